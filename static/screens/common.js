/* Shared by the screens: the REST API with the screen's login kept on the device, DOM building without
 * innerHTML, money and times in the page's language, polling, a toast. Plain JavaScript, no build step.
 * Words come from Django's JavaScript catalogue (gettext, interpolate), loaded before this file. */
"use strict";

const Screen = (() => {
  const body = document.body || document.documentElement;
  const language = () => document.documentElement.lang || "pt-br";
  const apiRoot = () => (document.body && document.body.dataset.api) || "/api/v1/";
  const screenName = () => (document.body && document.body.dataset.screen) || "screen";
  const storageKey = () => `kiosk-screen:${screenName()}:tokens`;

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || gettext("The server did not answer. Try again."));
      this.status = status;
      this.problem = problem || {};
      this.code = this.problem.code || "";
    }
  }

  function tokens() {
    try {
      return JSON.parse(localStorage.getItem(storageKey()) || "null");
    } catch (e) {
      return null;
    }
  }
  function saveTokens(value) {
    if (value) localStorage.setItem(storageKey(), JSON.stringify(value));
    else localStorage.removeItem(storageKey());
  }

  let refreshing = null;
  async function refresh() {
    const current = tokens();
    if (!current || !current.refresh) return false;
    if (!refreshing) {
      refreshing = fetch(apiRoot() + "auth/token/refresh/", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh: current.refresh }),
      })
        .then(async (response) => {
          if (!response.ok) {
            if (response.status === 401 || response.status === 400) saveTokens(null);
            return false;
          }
          const data = await response.json();
          saveTokens({ ...current, access: data.access, refresh: data.refresh || current.refresh });
          return true;
        })
        .catch(() => false)
        .finally(() => {
          refreshing = null;
        });
    }
    return refreshing;
  }

  /* One API call. Answers {status, data, headers}; a 4xx/5xx problem throws ApiError with its `detail`
   * (in the page's language: the API translates by Accept-Language, sent as the page's, which the language
   * switch may have changed from the browser's). A 401 refreshes the login once; if that fails the screen goes
   * back to its login form. */
  async function api(path, { method = "GET", body, headers = {}, idempotencyKey, etag, auth = true } = {}) {
    const send = async () => {
      const h = { Accept: "application/json", "Accept-Language": language(), ...headers };
      if (body !== undefined) h["Content-Type"] = "application/json";
      if (idempotencyKey) h["Idempotency-Key"] = idempotencyKey;
      if (etag) h["If-None-Match"] = etag;
      const current = tokens();
      if (auth && current && current.access) h.Authorization = `Bearer ${current.access}`;
      return fetch(apiRoot() + path.replace(/^\//, ""), {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    };
    let response;
    try {
      response = await send();
      if (response.status === 401 && auth && (await refresh())) response = await send();
    } catch (e) {
      throw new ApiError(0, { detail: gettext("No connection to the server. Trying again…"), code: "offline" });
    }
    if (response.status === 401 && auth) {
      saveTokens(null);
      document.dispatchEvent(new CustomEvent("screen:logged-out"));
    }
    if (response.status === 304) return { status: 304, data: null, headers: response.headers };
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return { status: response.status, data, headers: response.headers };
  }

  /* Shows the login form (templates/screens/login.html) until the API accepts a user with one of `roles`;
   * then calls onReady(). Tokens stay in this device's localStorage, one login per screen kind. */
  function login(onReady) {
    const form = document.getElementById("login-form");
    const ready = () => {
      if (form) form.hidden = true;
      onReady();
    };
    if (tokens()) return ready();
    form.hidden = false;
    const error = document.getElementById("login-error");
    form.onsubmit = async (event) => {
      event.preventDefault();
      error.hidden = true;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const result = await api("auth/token/", {
          method: "POST",
          auth: false,
          body: { username: form.username.value.trim(), password: form.password.value },
        });
        saveTokens({ access: result.data.access, refresh: result.data.refresh, username: form.username.value.trim() });
        form.password.value = "";
        ready();
      } catch (e) {
        error.textContent = e.status === 401 ? gettext("Wrong user or password.") : e.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    };
    (form.username.value ? form.password : form.username).focus();
  }

  function logout() {
    const current = tokens();
    if (current && current.refresh) {
      api("auth/logout/", { method: "POST", body: { refresh: current.refresh }, auth: false }).catch(() => {});
    }
    saveTokens(null);
    location.reload();
  }

  /* el("button", {class: "primary", onclick: f}, "text", child...): DOM without innerHTML (no injection). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /* "12.50" (the API's decimal string) -> "R$ 12,50" in pt-BR. Display only: amounts are never computed here. */
  function money(amount) {
    return new Intl.NumberFormat(language(), { style: "currency", currency: "BRL" }).format(Number(amount));
  }

  /* An ISO date-time as hours:minutes in the store's time zone (all times on a page in one zone). */
  function time(iso, timeZone) {
    if (!iso) return "";
    const options = { hour: "2-digit", minute: "2-digit" };
    if (timeZone) options.timeZone = timeZone;
    return new Intl.DateTimeFormat(language(), options).format(new Date(iso));
  }

  /* A fresh Idempotency-Key (also on plain http://, where crypto.randomUUID is missing). */
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /* Calls task() now and then every `ms` while the page is visible; a failure waits longer (up to 30 s). */
  function poll(task, ms) {
    let timer = null;
    let delay = ms;
    let stopped = false;
    const run = async () => {
      timer = null;
      if (stopped) return;
      if (document.hidden) return schedule();
      try {
        await task();
        delay = ms;
      } catch (e) {
        delay = Math.min(delay * 2, 30000);
        if (e instanceof ApiError && e.status !== 0) toast(e.message);
      }
      schedule();
    };
    const schedule = () => {
      if (!stopped && timer === null) timer = setTimeout(run, delay);
    };
    run();
    return {
      stop() {
        stopped = true;
        if (timer) clearTimeout(timer);
      },
      now() {
        if (timer) clearTimeout(timer);
        timer = null;
        run();
      },
    };
  }

  let toastTimer = null;
  function toast(message, ms = 4000) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      box.hidden = true;
    }, ms);
  }

  /* The language switch (templates/screens/language.html): choosing a language sends its form at once. */
  document.addEventListener("change", (event) => {
    const select = event.target.closest && event.target.closest("select[data-submit-on-change]");
    if (select && select.form) select.form.submit();
  });

  return { api, ApiError, login, logout, tokens, el, money, time, newKey, poll, toast, language };
})();
