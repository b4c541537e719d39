"use strict";
/* The counter: find today's order by its pickup number (GET /orders/?number=), see its lines, total and
 * status, take the money for an unpaid one (POST /orders/<id>/counter-payment/, cash or a card machine, with
 * one Idempotency-Key per attempt so a retry or a second click never pays twice), and today's orders
 * (GET /orders/?business_date=, the store's own date, its store and zone known from GET /me/ at the start).
 * For cash, the change is worked out for display only, in whole cents: what is sent is the order's total exactly
 * as the API gave it. */
(() => {
  const { el, api, money, time } = Screen;
  const root = document.getElementById("counter");
  const LIST_POLL_MS = 10000;
  const storeParam = new URLSearchParams(location.search).get("store"); // a manager at one store's counter
  const storeFilter = storeParam ? `&store=${encodeURIComponent(storeParam)}` : "";

  const STATUS = {
    awaiting_payment: () => gettext("Awaiting payment"),
    received: () => gettext("Received"),
    in_preparation: () => gettext("In preparation"),
    ready: () => gettext("Ready"),
    completed: () => gettext("Handed over"),
    cancelled: () => gettext("Cancelled"),
  };
  const METHODS = {
    cash: () => gettext("Cash"),
    card_outside: () => gettext("Card (card machine)"),
  };

  const state = {
    me: null, // GET /me/: the login and its store (null for a manager, who sees every store)
    store: {}, // {timeZone, name}
    order: null,
    // The payment being taken: one Idempotency-Key per order and method, kept across retries of that attempt.
    attempt: null,
    paying: false,
    paidNow: null, // {method, change} of the payment just taken, for the receipt line
    typed: { orderId: null, text: "" }, // the cash received, kept when the form is drawn again
  };

  /* Who is at the counter and for which store, before any order exists. A manager without ?store= sees every
   * store: "today" is then the newest order's store's date. */
  async function loadMe() {
    const me = (await api(`me/${storeParam ? `?store=${encodeURIComponent(storeParam)}` : ""}`)).data;
    state.me = me;
    state.store = me.store
      ? { timeZone: me.store.time_zone, name: me.store.name }
      : { name: me.roles.includes("manager") ? gettext("All stores") : "" };
    document.getElementById("who").textContent = me.username;
    document.getElementById("store-name").textContent = state.store.name ? `· ${state.store.name}` : "";
    tick();
  }

  const statusLabel = (status) => (STATUS[status] ? STATUS[status]() : status);
  const badge = (status) => el("span", { class: `badge status-${status}` }, statusLabel(status));
  const at = (iso) => time(iso, state.store.timeZone);

  // --- Money as whole cents (display only) -----------------------------------------------------------
  /* "61.70" -> 6170. The API's money is a decimal string with up to two decimals. */
  function cents(decimal) {
    const [whole, fraction = ""] = String(decimal).split(".");
    return Number(whole) * 100 + Number(fraction.padEnd(2, "0").slice(0, 2));
  }
  const decimal = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")}`;

  /* What a person typed ("50", "50,00", "1.234,50", "R$ 50") as cents, or null when it is not an amount. */
  function typedCents(text) {
    let value = text.replace(/R\$|\s/g, "");
    if (!value) return null;
    if (value.includes(",")) value = value.replace(/\./g, "").replace(",", ".");
    else if (/^\d{1,3}(\.\d{3})+$/.test(value)) value = value.replace(/\./g, ""); // 1.234 = mil duzentos...
    if (!/^\d{1,8}(\.\d{1,2})?$/.test(value)) return null;
    return cents(value);
  }

  // --- Messages for the API's problems, in this screen's words -------------------------------------
  function problemText(error) {
    const p = error.problem || {};
    switch (error.code) {
      case "order_not_payable":
        return interpolate(gettext("This order cannot be paid (status: %s)."), [statusLabel(p.current)]);
      case "payment_under_review":
        return gettext(
          "This order already received money that did not settle it and waits for review. " +
            "Approve or refund that payment in the back office before charging again.",
        );
      case "counter_amount_mismatch":
        return gettext("The amount does not match the order's total. The order was reloaded: check it and try again.");
      case "idempotency_request_in_progress":
        return gettext("This payment is still being recorded. Wait a moment, then press the button again.");
      case "busy_retry":
      case "internal_error":
        return gettext("The system could not record it. Nothing was charged: press the button again.");
      case "offline":
        return gettext("No connection to the server. Press the button again: a payment is never recorded twice.");
      case "not_found":
        return gettext("This order is not in this store.");
      case "permission_denied":
        return gettext("This login may not use the counter: log out and use a cashier login.");
      case "store_not_assigned":
        return gettext("This login works in no store yet: a manager sets it in the back office (Staff members).");
      case "validation_error":
        return gettext("The server refused the request. Check the number and try again.");
      default:
        return error.message;
    }
  }

  // --- Finding an order --------------------------------------------------------------------------------
  const findError = document.getElementById("find-error");
  function showFindError(message) {
    findError.textContent = message;
    findError.hidden = !message;
  }

  async function find(event) {
    event.preventDefault();
    const input = document.getElementById("find-number");
    const number = input.value.trim().replace(/^#/, "");
    if (!/^\d{1,9}$/.test(number) || Number(number) < 1) {
      showFindError(gettext("Type the pickup number, e.g. 12."));
      input.focus();
      return;
    }
    showFindError("");
    try {
      const result = await api(`orders/?number=${number}${storeFilter}`);
      const found = result.data.results;
      if (!found.length) {
        hideOrder();
        showFindError(interpolate(gettext("No order number %s today."), [number]));
        return;
      }
      if (found.length > 1) return chooseStore(found);
      showOrder(found[0], { focus: true });
    } catch (error) {
      showFindError(problemText(error));
    }
  }

  /* A manager sees every store: the same number may exist in several. */
  function chooseStore(orders) {
    const panel = document.getElementById("order");
    state.order = null;
    panel.replaceChildren(
      el("p", {}, gettext("This number exists in several stores. Which one?")),
      el(
        "ul",
        { class: "choices" },
        orders.map((o) =>
          el(
            "li",
            {},
            el("button", { type: "button", onclick: () => showOrder(o, { focus: true }) }, `${o.number} · ${o.store.name}`),
          ),
        ),
      ),
    );
    panel.hidden = false;
  }

  function hideOrder() {
    state.order = null;
    state.attempt = null;
    document.getElementById("order").hidden = true;
  }

  function newAttempt(order, method) {
    state.attempt = { orderId: order.id, method, key: Screen.newKey() };
  }

  function showOrder(order, { focus = false, message = null } = {}) {
    if (!state.order || state.order.id !== order.id) state.paidNow = null;
    state.order = order;
    if (order.status === "awaiting_payment") {
      if (!state.attempt || state.attempt.orderId !== order.id) newAttempt(order, "cash");
    } else {
      state.attempt = null;
    }
    const panel = document.getElementById("order");
    panel.replaceChildren(orderView(order, message));
    panel.hidden = false;
    markCurrent();
    if (focus) panel.querySelector("h3").focus();
  }

  function optionText(option) {
    const own = (option.options || []).map((o) => o.name).join(", ");
    const qty = option.quantity > 1 ? `${option.quantity}× ` : "";
    return `${option.group}: ${qty}${option.name}${own ? ` (${own})` : ""}`;
  }

  function orderView(order, message) {
    const lines = order.items.map((item) =>
      el(
        "tr",
        {},
        el("td", { class: "qty" }, `${item.quantity}×`),
        el(
          "td",
          {},
          el("span", { class: "item-name" }, item.name),
          item.options.length ? el("span", { class: "item-options" }, item.options.map(optionText).join(" · ")) : null,
          item.note ? el("span", { class: "item-note" }, `${gettext("Note:")} ${item.note}`) : null,
        ),
        el("td", { class: "money" }, money(item.line_total)),
      ),
    );
    const dining = order.dining === "eat_in" ? gettext("Eat in") : order.dining === "takeaway" ? gettext("Takeaway") : "";
    return el(
      "article",
      { class: `order status-${order.status}`, dataset: { orderId: order.id, status: order.status } },
      el(
        "header",
        { class: "order-head" },
        el("h3", { tabindex: "-1" }, interpolate(gettext("Order %s"), [order.number])),
        badge(order.status),
      ),
      el(
        "p",
        { class: "order-meta" },
        [interpolate(gettext("Placed at %s"), [at(order.created_at)]), dining, order.terminal && order.terminal.name]
          .filter(Boolean)
          .join(" · "),
      ),
      el(
        "table",
        { class: "lines" },
        el("caption", { class: "visually-hidden" }, gettext("Items")),
        el("tbody", {}, lines),
        el(
          "tfoot",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "row", colspan: "2" }, gettext("Total")),
            el("td", { class: "money total", dataset: { total: order.total } }, money(order.total)),
          ),
        ),
      ),
      message ? el("p", { class: `message order-message ${message.kind}`, role: message.kind === "error" ? "alert" : "status" }, message.text) : null,
      order.status === "awaiting_payment" ? payForm(order) : settled(order),
    );
  }

  function settled(order) {
    if (order.status === "cancelled") {
      return el("p", { class: "message notice" }, gettext("This order was cancelled: there is nothing to pay."));
    }
    const paid = state.paidNow;
    if (paid) {
      const text = [interpolate(gettext("Paid: %(amount)s, %(method)s."), { amount: money(order.total), method: METHODS[paid.method]().toLowerCase() }, true)];
      if (paid.change !== null && paid.change > 0) {
        text.push(interpolate(gettext("Give %s in change."), [money(decimal(paid.change))]));
      }
      return el("p", { class: "message success", role: "status" }, text.join(" "));
    }
    return el("p", { class: "message notice" }, gettext("Already paid."));
  }

  // --- Taking the payment ----------------------------------------------------------------------------
  function payForm(order) {
    const total = cents(order.total);
    const method = state.attempt.method;
    const form = el("form", { class: "pay", novalidate: true });
    const radios = Object.keys(METHODS).map((value) =>
      el(
        "label",
        { class: "method" },
        el("input", { type: "radio", name: "pay-method", value, checked: value === method }),
        el("span", {}, METHODS[value]()),
      ),
    );
    const received = el("input", {
      id: "cash-received",
      name: "received",
      inputmode: "decimal",
      autocomplete: "off",
      placeholder: money(order.total),
      "aria-describedby": "cash-change",
      value: state.typed.orderId === order.id ? state.typed.text : null,
    });
    const change = el("output", { id: "cash-change", for: "cash-received", class: "change", "aria-live": "polite" });
    const quick = el(
      "div",
      { class: "quick", role: "group", "aria-label": gettext("Amount received") },
      quickAmounts(total).map((c) =>
        el(
          "button",
          {
            type: "button",
            class: "quick-amount",
            onclick: () => {
              received.value = decimal(c).replace(".", Screen.language().startsWith("pt") ? "," : ".");
              update();
              received.focus();
            },
          },
          c === total ? gettext("Exact amount") : money(decimal(c)),
        ),
      ),
    );
    const cash = el(
      "div",
      { class: "cash", hidden: method !== "cash" },
      el("label", { for: "cash-received" }, gettext("Amount received")),
      el("div", { class: "cash-row" }, received, change),
      quick,
    );
    const error = el("p", { class: "error message field-error", role: "alert", hidden: true });
    const button = el(
      "button",
      { type: "submit", class: "primary pay-button" },
      interpolate(gettext("Take payment of %s"), [money(order.total)]),
    );

    function receivedCents() {
      return received.value.trim() ? typedCents(received.value) : null;
    }

    function update() {
      state.typed = { orderId: order.id, text: received.value };
      const chosen = form.elements.namedItem("pay-method").value;
      cash.hidden = chosen !== "cash";
      let problem = "";
      change.textContent = "";
      change.classList.remove("short");
      if (chosen === "cash" && received.value.trim()) {
        const got = receivedCents();
        if (got === null) problem = gettext("Type an amount such as 50,00.");
        else if (got < total) {
          problem = interpolate(gettext("That is %s less than the total."), [money(decimal(total - got))]);
          change.classList.add("short");
        } else change.textContent = interpolate(gettext("Change: %s"), [money(decimal(got - total))]);
      }
      error.textContent = problem;
      error.hidden = !problem;
      button.disabled = Boolean(problem) || state.paying;
    }

    form.addEventListener("change", (event) => {
      if (event.target.name === "pay-method" && event.target.value !== state.attempt.method) {
        newAttempt(order, event.target.value); // another method is another request: another key
      }
      update();
    });
    received.addEventListener("input", update);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (state.paying || button.disabled) return;
      const attempt = state.attempt;
      const got = attempt.method === "cash" ? receivedCents() : null;
      state.paying = true;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = gettext("Recording payment…");
      try {
        const result = await api(`orders/${order.id}/counter-payment/`, {
          method: "POST",
          idempotencyKey: attempt.key,
          body: { method: attempt.method, amount: order.total },
        });
        state.paidNow = { method: attempt.method, change: got === null ? null : got - total };
        state.attempt = null;
        state.paying = false;
        showOrder(result.data.order);
        loadToday().catch(() => {});
      } catch (error_) {
        state.paying = false;
        await afterFailure(order, error_);
      }
    });

    form.append(
      el("fieldset", { class: "methods" }, el("legend", {}, gettext("Payment method")), radios),
      cash,
      error,
      button,
    );
    update();
    return el("section", { class: "pay-box", "aria-label": gettext("Take payment") }, form);
  }

  /* A refused payment: reload the order when it changed under us; keep the attempt's key when the same
   * request may be sent again (no connection, busy, still in progress), so it is never recorded twice. */
  async function afterFailure(order, error) {
    const text = problemText(error);
    const sameAttemptAgain = ["offline", "busy_retry", "idempotency_request_in_progress", "internal_error"];
    if (!sameAttemptAgain.includes(error.code) && error.status !== 0) state.attempt = null;
    let fresh = order;
    if (["order_not_payable", "counter_amount_mismatch", "payment_under_review"].includes(error.code)) {
      try {
        fresh = (await api(`orders/${order.id}/`)).data;
      } catch (e) {
        fresh = order;
      }
      loadToday().catch(() => {});
    }
    showOrder(fresh, { message: { kind: "error", text } });
  }

  /* Exact, then the next round amounts a customer is likely to hand over. */
  function quickAmounts(total) {
    const amounts = [total];
    for (const note of [1000, 2000, 5000, 10000, 20000]) {
      const next = Math.ceil(total / note) * note;
      if (next > total && !amounts.includes(next)) amounts.push(next);
    }
    return amounts.slice(0, 4);
  }

  // --- Today's orders ------------------------------------------------------------------------------------
  /* The store's local date (numbers and "today" restart at its midnight), as YYYY-MM-DD. */
  function businessDate() {
    const options = { year: "numeric", month: "2-digit", day: "2-digit" };
    if (state.store.timeZone) options.timeZone = state.store.timeZone;
    return new Intl.DateTimeFormat("en-CA", options).format(new Date());
  }

  async function loadToday() {
    if (!state.me) await loadMe();
    if (!state.store.timeZone) {
      // Every store (a manager): the newest order's store says which day it is.
      const newest = (await api("orders/?limit=1")).data.results[0];
      if (newest) state.store.timeZone = newest.store.time_zone;
    }
    const result = await api(`orders/?business_date=${businessDate()}&limit=200${storeFilter}`);
    const orders = result.data.results;
    const rows = document.getElementById("today-rows");
    rows.replaceChildren(
      ...(orders.length
        ? orders.map((order) =>
            el(
              "tr",
              { class: state.order && state.order.id === order.id ? "current" : null, dataset: { number: order.number } },
              el(
                "td",
                {},
                el(
                  "button",
                  {
                    type: "button",
                    class: "open",
                    "aria-label": interpolate(gettext("Open order %s"), [order.number]),
                    onclick: () => {
                      document.getElementById("find-number").value = String(order.number);
                      showFindError("");
                      showOrder(order, { focus: true });
                      markCurrent();
                    },
                  },
                  String(order.number),
                ),
              ),
              el("td", {}, at(order.created_at)),
              el("td", {}, badge(order.status)),
              el("td", { class: "money" }, money(order.total)),
            ),
          )
        : [el("tr", {}, el("td", { colspan: "4", class: "empty" }, gettext("No orders yet today.")))]),
    );
    // The order on screen moved on elsewhere (paid at the kiosk, cancelled): show it as it is now.
    const shown = state.order && orders.find((o) => o.id === state.order.id);
    if (shown && shown.status !== state.order.status && !state.paying) showOrder(shown);
    const waiting = orders.filter((o) => o.status === "awaiting_payment").length;
    const count = result.data.count;
    document.getElementById("today-summary").textContent = [
      interpolate(ngettext("%s order", "%s orders", count), [count]),
      interpolate(ngettext("%s awaiting payment", "%s awaiting payment", waiting), [waiting]),
    ].join(" · ");
  }

  function markCurrent() {
    for (const row of document.querySelectorAll("#today-rows tr")) {
      row.classList.toggle("current", Boolean(state.order) && row.dataset.number === String(state.order.number));
    }
  }

  function tick() {
    document.getElementById("clock").textContent = time(new Date().toISOString(), state.store.timeZone);
  }

  function start() {
    root.hidden = false;
    document.getElementById("find-form").addEventListener("submit", find);
    document.getElementById("logout").addEventListener("click", () => Screen.logout());
    Screen.poll(async () => {
      try {
        await loadToday();
      } catch (error) {
        throw new Screen.ApiError(error.status, { ...error.problem, detail: problemText(error) });
      }
    }, LIST_POLL_MS);
    tick();
    setInterval(tick, 10000);
    document.getElementById("find-number").focus();
  }

  document.addEventListener("screen:logged-out", () => location.reload());
  Screen.login(start);
})();
