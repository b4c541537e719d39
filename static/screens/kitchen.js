"use strict";
/* The kitchen display: the store's queue (GET /kitchen/orders/, polled with If-None-Match: a 304 costs
 * nothing) as cards in three columns, received / in preparation / ready; one tap moves an order one step
 * (POST /kitchen/orders/<id>/status/); a beep when a new order comes in (after "Turn sound on": browsers play
 * sound only after a gesture). The store's name and time zone come from GET /me/ before any order exists;
 * times in that zone, ages against the server's clock. */
(() => {
  const { el, api, time } = Screen;
  const root = document.getElementById("kitchen");
  const POLL_MS = 3000;
  const LATE_MS = Number(root.dataset.lateMinutes || 10) * 60 * 1000;
  const NEW_MS = 15 * 1000; // how long a new card stays highlighted
  const COLUMNS = ["received", "in_preparation", "ready"];
  // One step per tap, as the API's status machine allows (docs/api.md).
  const NEXT = {
    received: { status: "in_preparation", label: () => gettext("Start preparing") },
    in_preparation: { status: "ready", label: () => gettext("Ready") },
    ready: { status: "completed", label: () => gettext("Handed over") },
  };
  const STATUS_LABELS = {
    received: () => gettext("Received"),
    in_preparation: () => gettext("In preparation"),
    ready: () => gettext("Ready"),
    completed: () => gettext("Handed over"),
  };
  const storeParam = new URLSearchParams(location.search).get("store"); // managers pick a store
  const storeQuery = storeParam ? `?store=${encodeURIComponent(storeParam)}` : "";

  const state = {
    etag: null,
    orders: [],
    total: 0,
    seen: null, // ids already shown: anything else is new (null until the first answer)
    fresh: new Map(), // id -> when it came in, for the highlight
    offset: 0, // server clock minus this device's, from the Date header
    me: null, // GET /me/: the login and its store (null for a manager watching every store)
    store: {}, // {name, timeZone} shown in the header and used for the clock
    busy: new Set(),
  };

  // --- Sound: a short double beep through Web Audio --------------------------------------------
  const sound = { context: null, on: false };
  const soundButton = document.getElementById("sound");

  function showSound() {
    soundButton.setAttribute("aria-pressed", String(sound.on));
    soundButton.textContent = sound.on ? gettext("Sound on") : gettext("Turn sound on");
    soundButton.classList.toggle("on", sound.on);
  }

  async function toggleSound() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) {
      Screen.toast(gettext("This browser cannot play sounds."));
      return;
    }
    if (!sound.context) sound.context = new Context();
    sound.on = !sound.on;
    if (sound.on) {
      await sound.context.resume();
      beep();
    }
    showSound();
  }

  function beep() {
    if (!sound.on || !sound.context) return;
    const audio = sound.context;
    const start = audio.currentTime + 0.02;
    for (const [offset, pitch] of [
      [0, 880],
      [0.28, 1175],
    ]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.type = "sine";
      tone.frequency.value = pitch;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.5, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.22);
      tone.connect(gain).connect(audio.destination);
      tone.start(start + offset);
      tone.stop(start + offset + 0.25);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  }

  // --- Time ---------------------------------------------------------------------------------------
  const now = () => Date.now() + state.offset;

  function syncClock(headers) {
    const date = Date.parse(headers.get("Date") || "");
    if (!Number.isNaN(date)) state.offset = date - Date.now();
  }

  function minutesText(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    return minutes < 1 ? gettext("now") : interpolate(gettext("%s min"), [minutes]);
  }

  /* The ages and the late marks move with the clock, not with the queue: updated in place. */
  function tick() {
    document.getElementById("clock").textContent = time(new Date(now()).toISOString(), state.store.timeZone);
    for (const node of root.querySelectorAll(".card")) {
      const waited = now() - Date.parse(node.dataset.since);
      const late = node.dataset.status !== "ready" && waited > LATE_MS;
      node.classList.toggle("late", late);
      const age = node.querySelector(".age-text");
      age.textContent = minutesText(waited);
      node.querySelector(".late-word").hidden = !late;
      const came = state.fresh.get(node.dataset.orderId);
      node.classList.toggle("new", came !== undefined && Date.now() - came < NEW_MS);
    }
  }

  // --- Cards --------------------------------------------------------------------------------------
  function diningLabel(dining) {
    if (dining === "eat_in") return gettext("Eat in");
    if (dining === "takeaway") return gettext("Takeaway");
    return "";
  }

  function quantity(n) {
    return n > 1 ? `${n}× ` : "";
  }

  function choice(option) {
    const own = option.options || [];
    return el(
      "li",
      { class: option.product_id ? "part" : "option" },
      el("span", { class: "group" }, `${option.group}: `),
      el("span", { class: "choice" }, quantity(option.quantity) + option.name),
      own.length ? el("ul", { class: "options" }, own.map(choice)) : null,
    );
  }

  function line(item) {
    return el(
      "li",
      { class: "item" },
      el("p", { class: "line" }, el("span", { class: "qty" }, `${item.quantity}×`), " ", el("span", {}, item.name)),
      item.options.length ? el("ul", { class: "options" }, item.options.map(choice)) : null,
      item.note ? el("p", { class: "note" }, el("strong", {}, gettext("Note:")), " ", item.note) : null,
    );
  }

  function card(order, showStore) {
    const since = order.received_at || order.created_at;
    const next = NEXT[order.status];
    const titleId = `order-${order.id}`;
    const button = el(
      "button",
      {
        type: "button",
        class: `advance to-${next.status}`,
        "aria-describedby": titleId,
        dataset: { orderId: order.id },
        disabled: state.busy.has(order.id),
        onclick: (event) => advance(order, event.currentTarget),
      },
      next.label(),
    );
    return el(
      "li",
      { class: "card", dataset: { orderId: order.id, status: order.status, since, number: order.number } },
      el(
        "article",
        { "aria-labelledby": titleId },
        el(
          "header",
          { class: "card-head" },
          el(
            "h3",
            { class: "number", id: titleId },
            el("span", { class: "visually-hidden" }, `${gettext("Order")} `),
            String(order.number),
          ),
          el("span", { class: `dining dining-${order.dining}` }, diningLabel(order.dining)),
          el(
            "span",
            { class: "age" },
            el("span", { class: "late-word", hidden: true }, `⚠ ${gettext("Late")} · `),
            el("span", { class: "age-text" }),
          ),
        ),
        el(
          "p",
          { class: "placed" },
          interpolate(gettext("Paid at %s"), [time(since, order.store && order.store.time_zone)]),
          showStore && order.store ? ` · ${order.store.name}` : "",
        ),
        el("ul", { class: "items" }, order.items.map(line)),
        button,
      ),
    );
  }

  function render() {
    const focused = document.activeElement && document.activeElement.closest(".card");
    const focusId = focused ? focused.dataset.orderId : null;
    const stores = new Set(state.orders.map((o) => o.store && o.store.slug));
    for (const status of COLUMNS) {
      const list = root.querySelector(`[data-cards="${status}"]`);
      const orders = state.orders.filter((o) => o.status === status);
      list.replaceChildren(
        ...(orders.length
          ? orders.map((o) => card(o, stores.size > 1))
          : [el("li", { class: "empty" }, gettext("No orders"))]),
      );
      root.querySelector(`[data-count="${status}"]`).textContent = String(orders.length);
    }
    if (focusId) {
      const again = root.querySelector(`.card[data-order-id="${focusId}"] button`);
      if (again) again.focus();
    }
    showMore();
    tick();
  }

  function showMore() {
    const more = state.total - state.orders.length;
    document.getElementById("status-line").textContent =
      more > 0 ? interpolate(ngettext("%s more order is not shown.", "%s more orders are not shown.", more), [more]) : "";
  }

  /* The store this display is about, from the start (GET /me/). A manager without ?store= watches every
   * store: the header says so, the cards name their stores and the clock follows the first card's. */
  async function loadMe() {
    const me = (await api(`me/${storeQuery}`)).data;
    state.me = me;
    state.store = me.store
      ? { name: me.store.name, timeZone: me.store.time_zone }
      : { name: me.roles.includes("manager") ? gettext("All stores") : "" };
    showStore();
  }

  function followCards(orders) {
    if (!state.me || state.me.store) return;
    const first = orders.find((o) => o.store);
    if (first) state.store.timeZone = first.store.time_zone;
  }

  function showStore() {
    document.getElementById("store-name").textContent = state.store.name ? `· ${state.store.name}` : "";
  }

  function receive(orders) {
    const ids = new Set(orders.map((o) => o.id));
    if (state.seen) {
      const arrived = orders.filter((o) => !state.seen.has(o.id));
      for (const order of arrived) state.fresh.set(order.id, Date.now());
      if (arrived.some((o) => o.status === "received")) beep();
    }
    state.seen = ids;
    for (const id of state.fresh.keys()) if (!ids.has(id)) state.fresh.delete(id);
    state.orders = orders;
    followCards(orders);
    render();
  }

  async function load() {
    try {
      if (!state.me) await loadMe();
      const result = await api(`kitchen/orders/${storeQuery}`, { etag: state.etag });
      syncClock(result.headers);
      if (state.failed) {
        state.failed = false;
        root.classList.remove("offline");
        showMore();
      }
      if (result.status === 304) return;
      state.etag = result.headers.get("ETag");
      state.total = Number(result.headers.get("X-Total-Count") || result.data.length);
      receive(result.data);
    } catch (error) {
      const text = error.status === 0 ? gettext("No connection to the server. Trying again…") : problemText(error);
      state.failed = true;
      root.classList.toggle("offline", error.status === 0);
      document.getElementById("status-line").textContent = text;
      // Screen.poll waits longer after a failure and shows the message (in this screen's words).
      throw new Screen.ApiError(error.status, { ...error.problem, detail: text });
    }
  }

  // --- One tap: the next step ---------------------------------------------------------------------
  async function advance(order, button) {
    const next = NEXT[order.status];
    if (!next || state.busy.has(order.id)) return;
    state.busy.add(order.id);
    button.disabled = true;
    try {
      const result = await api(`kitchen/orders/${order.id}/status/`, { method: "POST", body: { status: next.status } });
      const changed = result.data;
      // Shown at once; the next poll brings the queue as the server has it.
      state.orders = state.orders
        .map((o) => (o.id === changed.id ? { ...o, status: changed.status, ready_at: changed.ready_at } : o))
        .filter((o) => NEXT[o.status]);
      document.getElementById("announce").textContent = interpolate(gettext("Order %(number)s: %(status)s"), {
        number: changed.number,
        status: STATUS_LABELS[changed.status] ? STATUS_LABELS[changed.status]() : changed.status,
      }, true);
    } catch (error) {
      Screen.toast(problemText(error));
    } finally {
      state.busy.delete(order.id);
      render();
      poller.now();
    }
  }

  function problemText(error) {
    switch (error.code) {
      case "invalid_transition":
        return gettext("This order has already moved on: the screen is up to date now.");
      case "not_found":
        return gettext("This order is no longer in this store's queue.");
      case "busy_retry":
        return gettext("The system is busy. Tap again.");
      case "permission_denied":
        return gettext("This login may not use the kitchen display: log out and use a kitchen login.");
      case "store_not_assigned":
        return gettext("This login works in no store yet: a manager sets it in the back office (Staff members).");
      case "offline":
        return gettext("No connection to the server. Tap again when it is back.");
      default:
        return error.message;
    }
  }

  let poller = null;
  function start() {
    root.hidden = false;
    showStore();
    showSound();
    soundButton.addEventListener("click", toggleSound);
    document.getElementById("logout").addEventListener("click", () => Screen.logout());
    poller = Screen.poll(load, POLL_MS);
    setInterval(tick, 5000);
    tick();
  }

  document.addEventListener("screen:logged-out", () => location.reload());
  Screen.login(start);
})();
