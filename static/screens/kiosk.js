"use strict";
/* The self-service kiosk over the REST API: start, eat in or take away, the menu with pictures, a product's
 * options (a combo's slots), the cart, CPF on the receipt, the order as placed, the Mercado Pago QR with its
 * countdown and live status, the pickup number; failure, expiry and "see the counter" screens; an idle reset.
 * Back on its start screen the kiosk speaks the site's language again (pt-BR), whatever the last customer chose.
 *
 * Money: the API's decimal strings; the cart's running total is added up in whole cents (integers) for
 * display only. What the customer pays is the total of the API's answer.
 * Retries never duplicate an order: each attempt to place one has its own Idempotency-Key, sent again
 * unchanged when the same attempt is retried after a network failure; a changed cart is a new attempt. */
(() => {
  const { el, api, money } = Screen;
  const params = new URLSearchParams(location.search);
  const setting = (name, fallback) => {
    const value = Number(params.get(name));
    return value > 0 ? value : fallback;
  };
  // Tunable per device with the page's query string (/kiosk/?idle=90): shops differ, and tests need seconds.
  const IDLE_SECONDS = setting("idle", 60);
  const IDLE_WARNING_SECONDS = setting("idle_warning", 20);
  const MENU_POLL_MS = setting("menu_poll", 5) * 1000;
  const PAYMENT_POLL_MS = 1500;
  const DONE_SECONDS = 20;
  const REVIEW_SECONDS = 40;
  const RETRY_DELAYS_MS = [800, 1600, 3200];
  const MAX_QUANTITY = 50;
  const MAX_NOTE = 140;
  const PAID = ["received", "in_preparation", "ready", "completed"];

  const $ = (id) => document.getElementById(id);
  const DEFAULT_LANGUAGE = ($("kiosk").dataset.defaultLanguage || "").toLowerCase();
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const state = {
    view: "start",
    me: null, // GET /me/: this kiosk's terminal and its store (what it offers)
    categories: [],
    products: [],
    byId: new Map(),
    etags: { categories: null, products: null },
    category: null,
    dining: "",
    cart: [],
    cpf: "",
    draft: null, // the product being chosen
    attempt: null, // {key, body}: the order being placed; a retry of the same body keeps the key
    order: null, // as the API placed it
    checkoutKey: null,
    payment: null,
    skew: 0, // server clock minus ours, ms
  };
  const timers = { menu: null, payment: null, countdown: null, leave: null };

  // --- Money in whole cents (display only) ---------------------------------------------------------

  function cents(amount) {
    const [whole, fraction = ""] = String(amount).split(".");
    return Number.parseInt(whole, 10) * 100 + Number.parseInt(`${fraction}00`.slice(0, 2), 10);
  }
  function decimal(value) {
    return `${Math.floor(value / 100)}.${String(value % 100).padStart(2, "0")}`;
  }
  const moneyCents = (value) => money(decimal(value));

  // --- Views ---------------------------------------------------------------------------------------

  function show(name, { focus = true } = {}) {
    state.view = name;
    for (const view of document.querySelectorAll(".view")) view.hidden = view.dataset.view !== name;
    // A word about the menu ("Added: ...") is old news on the payment's screens.
    if (["start", "busy", "pay", "done", "problem"].includes(name)) $("toast").hidden = true;
    const heading = $(`view-${name}`).querySelector("h1");
    window.scrollTo(0, 0);
    if (focus && heading && name !== "start") heading.focus({ preventScroll: true });
    idle.arm();
  }

  function busy(text) {
    $("busy-title").textContent = text;
    show("busy");
  }

  /* A problem screen: title, text, an optional pickup number and its buttons. */
  function problem({ title, text, number = null, icon = "!", actions = [], tone = "bad" }) {
    $("problem-icon").textContent = icon;
    $("problem-icon").className = `problem-icon ${tone}`;
    $("problem-title").textContent = title;
    $("problem-text").textContent = text || "";
    $("problem-number").hidden = number === null;
    $("problem-number").textContent = number === null ? "" : String(number);
    $("problem-actions").replaceChildren(
      ...actions.map((action) =>
        el("button", { type: "button", class: action.primary ? "primary big" : "big", onclick: action.run }, action.label),
      ),
    );
    show("problem");
  }

  // --- Login, terminal, menu -----------------------------------------------------------------------

  function start() {
    $("kiosk").hidden = true;
    Screen.login(ready);
  }
  document.addEventListener("screen:logged-out", () => {
    stopPayment();
    if (timers.menu) timers.menu.stop();
    start();
  });

  async function ready() {
    $("kiosk").hidden = false;
    try {
      state.me = (await api("me/")).data;
    } catch (e) {
      return terminalProblem(e);
    }
    if (!state.me.terminal) return terminalProblem({ status: 403 });
    $("terminal-problem").hidden = true;
    $("start-store").textContent = state.me.store.name;
    if (timers.menu) timers.menu.stop();
    timers.menu = Screen.poll(refreshMenu, MENU_POLL_MS);
    show("start");
  }

  /* A login that is no kiosk terminal (a staff login, a kiosk with no terminal yet: /me/ names none), a
   * refused one, or no answer. */
  function terminalProblem(error) {
    const box = $("terminal-problem");
    const text =
      error.status === 403
        ? gettext("This login is not a kiosk terminal. Log in with the terminal's user.")
        : gettext("The server did not answer. Try again.");
    box.replaceChildren(
      el("span", {}, text),
      " ",
      el("button", { type: "button", onclick: () => Screen.logout() }, gettext("Log out")),
      " ",
      el("button", { type: "button", class: "primary", onclick: ready }, gettext("Try again")),
    );
    box.hidden = false;
    for (const view of document.querySelectorAll(".view")) view.hidden = true;
  }

  /* The menu, read with its ETags: a 304 costs nothing; a change (something sold out) re-draws it. */
  async function refreshMenu() {
    const [categories, products] = await Promise.all([
      api("categories/", { etag: state.etags.categories }),
      api("products/", { etag: state.etags.products }),
    ]);
    let changed = false;
    if (categories.status !== 304) {
      state.categories = categories.data;
      state.etags.categories = categories.headers.get("ETag");
      changed = true;
    }
    if (products.status !== 304) {
      state.products = products.data.filter((product) => product.available);
      state.byId = new Map(state.products.map((product) => [product.id, product]));
      state.etags.products = products.headers.get("ETag");
      changed = true;
    }
    if (changed) menuChanged();
  }

  function menuChanged() {
    pruneCart();
    if (state.view === "menu") renderMenu();
    if (state.view === "cart") renderCart();
    if (state.view === "product" && state.draft) {
      const fresh = state.byId.get(state.draft.product.id);
      if (!fresh) {
        Screen.toast(interpolate(gettext("Sorry, %s just sold out."), [state.draft.product.name]));
        openMenu();
      } else if (JSON.stringify(fresh) !== JSON.stringify(state.draft.product)) {
        state.draft.product = fresh;
        renderProduct();
      }
    }
  }

  // --- Pictures ------------------------------------------------------------------------------------

  /* A product's picture, or a plain tile with its initial when it has none (or the page may not load it). */
  function picture(url, name, className = "picture") {
    const placeholder = () => el("span", { class: `${className} placeholder`, "aria-hidden": "true" }, name.slice(0, 1));
    if (!url || !loadable(url)) return placeholder();
    const image = el("img", { class: className, src: url, alt: "", decoding: "async" });
    image.addEventListener("error", () => image.replaceWith(placeholder()), { once: true });
    return image;
  }
  /* The page's policy loads images from this site and over https: only; anything else would be refused. */
  function loadable(url) {
    try {
      const parsed = new URL(url, location.href);
      return parsed.origin === location.origin || parsed.protocol === "https:";
    } catch (e) {
      return false;
    }
  }

  // --- Start, dining -------------------------------------------------------------------------------

  $("start-button").addEventListener("click", () => {
    restartState();
    const store = state.me && state.me.store;
    if (store && store.offers_eat_in && store.offers_takeaway) return show("dining");
    state.dining = "";
    openMenu();
  });
  for (const button of document.querySelectorAll("[data-dining]")) {
    button.addEventListener("click", () => {
      state.dining = button.dataset.dining;
      openMenu();
    });
  }
  function diningLabel(dining) {
    if (dining === "eat_in") return gettext("Eat here");
    if (dining === "takeaway") return gettext("Take away");
    return "";
  }

  // --- Menu ----------------------------------------------------------------------------------------

  function visibleCategories() {
    return state.categories.filter((category) => state.products.some((p) => p.category === category.slug));
  }

  function openMenu() {
    state.draft = null;
    renderMenu();
    show("menu");
  }

  function renderCategories() {
    const categories = visibleCategories();
    if (!categories.some((category) => category.slug === state.category)) {
      state.category = categories.length ? categories[0].slug : null;
    }
    $("categories").replaceChildren(
      ...categories.map((category) => {
        const first = state.products.find((p) => p.category === category.slug);
        return el(
          "button",
          {
            type: "button",
            class: "category",
            "aria-pressed": String(category.slug === state.category),
            onclick: () => {
              state.category = category.slug;
              renderMenu();
              $("products").scrollTop = 0;
            },
          },
          picture(first && first.image_url, category.name, "category-picture"),
          el("span", {}, category.name),
        );
      }),
    );
  }

  function renderMenu() {
    renderCategories();
    const products = state.products.filter((p) => p.category === state.category);
    const category = state.categories.find((c) => c.slug === state.category);
    $("menu-dining").textContent = diningLabel(state.dining);
    $("menu-dining").hidden = !state.dining;
    $("products").replaceChildren(
      el("h2", { class: "category-title" }, category ? category.name : ""),
      products.length
        ? el(
            "ul",
            { class: "product-grid" },
            products.map((product) =>
              el(
                "li",
                {},
                el(
                  "button",
                  { type: "button", class: "product-card", dataset: { product: product.id }, onclick: () => openProduct(product) },
                  picture(product.image_url, product.name),
                  product.kind === "combo" ? el("span", { class: "tag" }, gettext("Combo")) : null,
                  el("span", { class: "product-name" }, product.name),
                  el("span", { class: "product-price" }, money(product.price)),
                ),
              ),
            ),
          )
        : el("p", { class: "empty" }, gettext("Nothing on the menu right now.")),
    );
    renderCartBar();
  }

  function cartCount() {
    return state.cart.reduce((sum, line) => sum + line.quantity, 0);
  }
  function cartCents() {
    return state.cart.reduce((sum, line) => sum + lineUnitCents(line) * line.quantity, 0);
  }

  function renderCartBar() {
    const count = cartCount();
    $("cart-summary").replaceChildren(
      count
        ? el(
            "span",
            {},
            interpolate(ngettext("%s item", "%s items", count), [count]),
            " · ",
            el("strong", {}, moneyCents(cartCents())),
          )
        : el("span", {}, gettext("Your order is empty.")),
    );
    $("cart-open").disabled = count === 0;
  }
  $("cart-open").addEventListener("click", openCart);

  // --- A product: options, combo slots, quantity, note ------------------------------------------------

  function openProduct(product) {
    const picks = new Map();
    for (const group of product.option_groups) {
      const available = group.options.filter((option) => option.available);
      // A required single choice with one possibility (a combo's only sandwich) is already chosen.
      picks.set(group.id, new Set(group.min_choices >= 1 && group.max_choices === 1 && available.length === 1 ? [available[0].id] : []));
    }
    state.draft = { product, quantity: 1, note: "", picks, parts: new Map() };
    renderProduct();
    show("product");
  }

  /* The groups a draft must satisfy: the product's, then the own groups of each combo part chosen. */
  function draftGroups(draft) {
    const groups = draft.product.option_groups.map((group) => ({ group, picks: draft.picks.get(group.id), owner: null }));
    if (draft.product.kind === "combo") {
      for (const group of draft.product.option_groups) {
        for (const optionId of draft.picks.get(group.id)) {
          const option = group.options.find((o) => o.id === optionId);
          const part = option && option.product_id ? state.byId.get(option.product_id) : null;
          if (!part) continue;
          for (const own of part.option_groups) groups.push({ group: own, picks: partPicks(draft, option.id, own.id), owner: part });
        }
      }
    }
    return groups;
  }
  function partPicks(draft, slotOptionId, groupId) {
    if (!draft.parts.has(slotOptionId)) draft.parts.set(slotOptionId, new Map());
    const groups = draft.parts.get(slotOptionId);
    if (!groups.has(groupId)) groups.set(groupId, new Set());
    return groups.get(groupId);
  }

  function ruleText(group) {
    const { min_choices: min, max_choices: max } = group;
    if (min === max) return interpolate(ngettext("Choose %s", "Choose %s", min), [min]);
    if (min === 0 && max === 1) return gettext("Optional");
    if (min === 0) return interpolate(gettext("Up to %s"), [max]);
    return interpolate(gettext("Choose %(min)s to %(max)s"), { min, max }, true);
  }
  const satisfied = (entry) => entry.picks.size >= entry.group.min_choices && entry.picks.size <= entry.group.max_choices;

  function optionTile(group, option, picks, inputName, onChange) {
    const single = group.max_choices === 1;
    const checked = picks.has(option.id);
    const input = el("input", {
      type: single ? "radio" : "checkbox",
      name: inputName,
      value: String(option.id),
      checked,
      disabled: !option.available,
    });
    input.addEventListener("change", () => {
      if (single) {
        picks.clear();
        if (input.checked) picks.add(option.id);
      } else if (input.checked) picks.add(option.id);
      else picks.delete(option.id);
      onChange();
    });
    const part = option.product_id ? state.byId.get(option.product_id) : null;
    const extra = cents(option.price);
    return el(
      "label",
      { class: `option${option.available ? "" : " unavailable"}` },
      input,
      part ? picture(part.image_url, option.name, "option-picture") : null,
      el("span", { class: "option-name" }, option.name),
      option.available
        ? el("span", { class: "option-price" }, extra ? `+ ${money(option.price)}` : "")
        : el("span", { class: "option-price" }, gettext("Sold out")),
    );
  }

  function groupFieldset(group, picks, scope, owner, onChange) {
    const name = `${scope}-group-${group.id}`;
    const tiles = [];
    if (group.max_choices === 1 && group.min_choices === 0) {
      // An optional single choice: "none" is a choice too, so it can be undone by touch.
      const none = el("input", { type: "radio", name, value: "", checked: picks.size === 0 });
      none.addEventListener("change", () => {
        picks.clear();
        onChange();
      });
      tiles.push(el("label", { class: "option option-none" }, none, el("span", { class: "option-name" }, gettext("No, thanks"))));
    }
    for (const option of group.options) tiles.push(optionTile(group, option, picks, name, onChange));
    const legend = el(
      "legend",
      {},
      el("span", { class: "group-name" }, owner ? `${owner.name}: ${group.name}` : group.name),
      el("span", { class: `group-rule${group.min_choices ? " required" : ""}` }, ruleText(group)),
      group.min_choices ? el("span", { class: "visually-hidden" }, ` (${gettext("required")})`) : null,
    );
    return el("fieldset", { class: "group", dataset: { group: group.id, scope } }, legend, el("div", { class: "options" }, tiles));
  }

  function renderProduct() {
    const draft = state.draft;
    const product = draft.product;
    // After a menu change: groups as the menu has them now, without choices that sold out meanwhile.
    for (const group of product.option_groups) {
      const picks = draft.picks.get(group.id) || new Set();
      for (const id of picks) if (!group.options.some((o) => o.id === id && o.available)) picks.delete(id);
      draft.picks.set(group.id, picks);
    }
    const view = $("view-product");
    const price = el("span", { class: "add-price" });
    const missing = el("p", { class: "missing", id: "product-missing", "aria-live": "polite" });
    const quantity = stepper(
      () => draft.quantity,
      (value) => {
        draft.quantity = value;
        refresh();
      },
      product.name,
    );
    const groupsBox = el("div", { class: "groups" });
    const note = el("textarea", {
      id: "product-note",
      maxlength: String(MAX_NOTE),
      rows: "2",
      placeholder: gettext("E.g. no salt, cut in half"),
    });
    note.value = draft.note;
    note.addEventListener("input", () => {
      draft.note = note.value;
    });
    const add = el("button", { type: "button", class: "primary big add-button", id: "product-add" }, gettext("Add to order"), " ", price);

    const drawGroups = () => {
      const fieldsets = [];
      for (const group of product.option_groups) {
        fieldsets.push(groupFieldset(group, draft.picks.get(group.id), "product", null, changed));
        if (product.kind !== "combo") continue;
        for (const optionId of draft.picks.get(group.id)) {
          const option = group.options.find((o) => o.id === optionId);
          const part = option && option.product_id ? state.byId.get(option.product_id) : null;
          if (!part || !part.option_groups.length) continue;
          fieldsets.push(
            el(
              "div",
              { class: "part-groups" },
              part.option_groups.map((own) =>
                groupFieldset(own, partPicks(draft, option.id, own.id), `part-${option.id}`, part, changed),
              ),
            ),
          );
        }
      }
      groupsBox.replaceChildren(...fieldsets);
    };
    // A combo's slot choice brings its product's own groups: draw them again; otherwise only the totals.
    let shape = "";
    function changed() {
      const now = comboShape();
      if (now !== shape) {
        const focused = document.activeElement && document.activeElement.closest("fieldset");
        const where = focused ? [focused.dataset.scope, focused.dataset.group] : null;
        drawGroups();
        shape = now;
        if (where) {
          const again = groupsBox.querySelector(`fieldset[data-scope="${where[0]}"][data-group="${where[1]}"] input:checked`);
          if (again) again.focus();
        }
      }
      refresh();
    }
    const comboShape = () => (product.kind === "combo" ? product.option_groups.map((g) => [...draft.picks.get(g.id)].join(",")).join("|") : "");

    function refresh() {
      const entries = draftGroups(draft);
      for (const fieldset of groupsBox.querySelectorAll("fieldset")) {
        const entry = entries.find(
          (e) => String(e.group.id) === fieldset.dataset.group && fieldsetScope(e) === fieldset.dataset.scope,
        );
        if (!entry) continue;
        const full = entry.group.max_choices > 1 && entry.picks.size >= entry.group.max_choices;
        for (const input of fieldset.querySelectorAll("input[type=checkbox]")) {
          const option = entry.group.options.find((o) => String(o.id) === input.value);
          input.disabled = !option.available || (full && !input.checked);
          input.closest("label").classList.toggle("at-limit", input.disabled && option.available);
        }
        fieldset.classList.toggle("done", satisfied(entry) && entry.picks.size > 0);
      }
      const wanting = entries.find((entry) => !satisfied(entry));
      missing.textContent = wanting
        ? interpolate(gettext("Choose: %s"), [wanting.owner ? `${wanting.owner.name} – ${wanting.group.name}` : wanting.group.name])
        : "";
      add.setAttribute("aria-describedby", "product-missing");
      price.textContent = moneyCents(draftUnitCents(draft) * draft.quantity);
    }
    const fieldsetScope = (entry) => {
      if (!entry.owner) return "product";
      for (const [slotOptionId, groups] of draft.parts) if (groups.get(entry.group.id) === entry.picks) return `part-${slotOptionId}`;
      return "";
    };

    add.addEventListener("click", () => {
      const wanting = draftGroups(draft).find((entry) => !satisfied(entry));
      if (wanting) {
        const target = groupsBox.querySelector(
          `fieldset[data-scope="${fieldsetScope(wanting)}"][data-group="${wanting.group.id}"]`,
        );
        if (target) {
          target.classList.add("attention");
          target.scrollIntoView({ behavior: "smooth", block: "center" });
          const first = target.querySelector("input:not(:disabled)");
          if (first) first.focus({ preventScroll: true });
          setTimeout(() => target.classList.remove("attention"), 1600);
        }
        return;
      }
      addToCart(draft);
      Screen.toast(interpolate(gettext("Added: %s"), [product.name]), 2500);
      openMenu();
    });

    view.replaceChildren(
      el(
        "header",
        { class: "kiosk-bar" },
        el("button", { type: "button", class: "quiet back", onclick: openMenu }, `← ${gettext("Menu")}`),
        el("h1", { id: "product-title", tabindex: "-1" }, product.name),
      ),
      el(
        "div",
        { class: "product-hero" },
        picture(product.image_url, product.name, "hero-picture"),
        el(
          "div",
          {},
          product.description ? el("p", { class: "description" }, product.description) : null,
          el("p", { class: "base-price" }, money(product.price)),
        ),
      ),
      groupsBox,
      el("div", { class: "note-box" }, el("label", { for: "product-note" }, gettext("Note for the kitchen (optional)")), note),
      el("footer", { class: "action-bar product-actions" }, quantity, el("div", { class: "add-box" }, missing, add)),
    );
    drawGroups();
    shape = comboShape();
    refresh();
  }

  /* − 2 + with the value announced; stays within 1..50. */
  function stepper(get, set, name) {
    const value = el("output", { class: "stepper-value", "aria-live": "polite" }, String(get()));
    const update = (delta) => {
      const next = Math.min(MAX_QUANTITY, Math.max(1, get() + delta));
      set(next);
      value.textContent = String(next);
      minus.disabled = next <= 1;
      plus.disabled = next >= MAX_QUANTITY;
    };
    const minus = el(
      "button",
      { type: "button", class: "step", "aria-label": interpolate(gettext("One less %s"), [name]), onclick: () => update(-1) },
      "−",
    );
    const plus = el(
      "button",
      { type: "button", class: "step", "aria-label": interpolate(gettext("One more %s"), [name]), onclick: () => update(1) },
      "+",
    );
    minus.disabled = get() <= 1;
    plus.disabled = get() >= MAX_QUANTITY;
    return el("div", { class: "stepper", role: "group", "aria-label": gettext("Quantity") }, minus, value, plus);
  }

  // --- Cart ----------------------------------------------------------------------------------------

  /* A draft as an order line in the API's shape: options with their combo parts' own options. */
  function draftOptions(draft) {
    const options = [];
    for (const group of draft.product.option_groups) {
      for (const optionId of [...draft.picks.get(group.id)].sort((a, b) => a - b)) {
        const choice = { option_id: optionId };
        const own = draft.product.kind === "combo" && draft.parts.get(optionId);
        const option = group.options.find((o) => o.id === optionId);
        const part = option && option.product_id ? state.byId.get(option.product_id) : null;
        if (own && part) {
          const nested = part.option_groups.flatMap((g) => [...(own.get(g.id) || [])].sort((a, b) => a - b));
          if (nested.length) choice.options = nested.map((id) => ({ option_id: id }));
        }
        options.push(choice);
      }
    }
    return options;
  }

  function addToCart(draft) {
    const line = {
      productId: draft.product.id,
      name: draft.product.name,
      quantity: draft.quantity,
      note: draft.note.trim().slice(0, MAX_NOTE),
      options: draftOptions(draft),
    };
    const key = lineKey(line);
    const same = state.cart.find((other) => lineKey(other) === key);
    if (same) same.quantity = Math.min(MAX_QUANTITY, same.quantity + line.quantity);
    else state.cart.push({ ...line, uid: Screen.newKey() });
  }
  const lineKey = (line) => JSON.stringify([line.productId, line.options, line.note]);

  function draftUnitCents(draft) {
    return lineUnitCents({ productId: draft.product.id, options: draftOptions(draft) }, draft.product);
  }

  /* Where an option of a product is: [group, option], or null when it is gone from the menu. */
  function findOption(product, optionId) {
    for (const group of product.option_groups) {
      const option = group.options.find((o) => o.id === optionId);
      if (option) return [group, option];
    }
    return null;
  }

  function lineUnitCents(line, product = state.byId.get(line.productId)) {
    if (!product) return 0;
    let total = cents(product.price);
    for (const choice of line.options) {
      const found = findOption(product, choice.option_id);
      if (!found) continue;
      total += cents(found[1].price);
      const part = found[1].product_id ? state.byId.get(found[1].product_id) : null;
      for (const own of choice.options || []) {
        const ownFound = part && findOption(part, own.option_id);
        if (ownFound) total += cents(ownFound[1].price);
      }
    }
    return total;
  }

  /* "Bebida: Suco de laranja · Lanche: X-Burger (Retirar: Cebola)", in the menu's group order. */
  function describe(line) {
    const product = state.byId.get(line.productId);
    if (!product) return "";
    const parts = [];
    for (const group of product.option_groups) {
      const chosen = line.options
        .map((choice) => [choice, group.options.find((o) => o.id === choice.option_id)])
        .filter(([, option]) => option);
      if (!chosen.length) continue;
      const names = chosen.map(([choice, option]) => {
        const part = option.product_id ? state.byId.get(option.product_id) : null;
        const own = (choice.options || []).map((o) => part && findOption(part, o.option_id)).filter(Boolean);
        if (!own.length) return option.name;
        return `${option.name} (${groupsText(own)})`;
      });
      parts.push(`${group.name}: ${names.join(", ")}`);
    }
    return parts.join(" · ");
  }
  function groupsText(found) {
    const byGroup = new Map();
    for (const [group, option] of found) byGroup.set(group.name, [...(byGroup.get(group.name) || []), option.name]);
    return [...byGroup].map(([group, names]) => `${group}: ${names.join(", ")}`).join("; ");
  }

  /* After the menu changed: lines whose product or a chosen option is gone leave the cart, with a word. */
  function pruneCart() {
    const gone = [];
    state.cart = state.cart.filter((line) => {
      const product = state.byId.get(line.productId);
      const ok =
        product &&
        line.options.every((choice) => {
          const found = findOption(product, choice.option_id);
          if (!found || !found[1].available) return false;
          const part = found[1].product_id ? state.byId.get(found[1].product_id) : null;
          return (choice.options || []).every((own) => {
            const ownFound = part && findOption(part, own.option_id);
            return ownFound && ownFound[1].available;
          });
        });
      if (!ok) gone.push(product ? product.name : line.name || "");
      else line.name = product.name;
      return ok;
    });
    if (gone.length) {
      Screen.toast(interpolate(gettext("Sold out, taken off your order: %s"), [gone.filter(Boolean).join(", ")]), 6000);
      if (state.view === "menu") renderCartBar();
    }
  }

  function openCart() {
    renderCart();
    show("cart");
  }

  function renderCart() {
    $("cart-dining").textContent = diningLabel(state.dining);
    $("cart-dining").hidden = !state.dining;
    $("cart-empty").hidden = state.cart.length > 0;
    $("cart-continue").disabled = state.cart.length === 0;
    $("cart-lines").replaceChildren(...state.cart.map(cartLine));
    $("cart-total").replaceChildren(
      el("span", {}, gettext("Total")),
      " ",
      el("strong", {}, moneyCents(cartCents())),
    );
  }

  function cartLine(line) {
    const product = state.byId.get(line.productId);
    const total = el("p", { class: "line-total" }, moneyCents(lineUnitCents(line) * line.quantity));
    const noteBox = el("div", { class: "line-note" });
    const drawNote = () => {
      noteBox.replaceChildren(
        line.note ? el("p", { class: "note" }, `${gettext("Note")}: ${line.note}`) : null,
        el(
          "button",
          {
            type: "button",
            class: "quiet small",
            "aria-label": interpolate(gettext("Note for %s"), [product.name]),
            onclick: editNote,
          },
          line.note ? gettext("Change note") : gettext("Add a note"),
        ),
      );
    };
    const editNote = () => {
      const id = `note-${line.uid}`;
      const input = el("textarea", { id, maxlength: String(MAX_NOTE), rows: "2", placeholder: gettext("E.g. no salt, cut in half") });
      input.value = line.note;
      const save = () => {
        line.note = input.value.trim().slice(0, MAX_NOTE);
        state.attempt = null;
        drawNote();
        noteBox.querySelector("button").focus();
      };
      noteBox.replaceChildren(
        el("label", { for: id }, interpolate(gettext("Note for %s"), [product.name])),
        input,
        el("button", { type: "button", class: "primary", onclick: save }, gettext("Save note")),
      );
      input.focus();
    };
    drawNote();
    return el(
      "li",
      { class: "cart-line", dataset: { line: line.uid } },
      picture(product.image_url, product.name, "line-picture"),
      el("div", { class: "line-info" }, el("h2", {}, product.name), el("p", { class: "line-options" }, describe(line)), noteBox),
      el(
        "div",
        { class: "line-side" },
        stepper(
          () => line.quantity,
          (value) => {
            line.quantity = value;
            total.textContent = moneyCents(lineUnitCents(line) * line.quantity);
            $("cart-total").querySelector("strong").textContent = moneyCents(cartCents());
          },
          product.name,
        ),
        total,
        el(
          "button",
          {
            type: "button",
            class: "quiet small remove",
            "aria-label": interpolate(gettext("Remove %s"), [product.name]),
            onclick: () => {
              state.cart = state.cart.filter((other) => other !== line);
              renderCart();
              $("cart-title").focus();
            },
          },
          gettext("Remove"),
        ),
      ),
    );
  }

  $("cart-continue").addEventListener("click", () => {
    if (!state.cart.length) return;
    openCpf();
  });

  // --- CPF on the receipt --------------------------------------------------------------------------

  /* The check digits of a CPF, as the back end checks them (orders/cpf.py, validate_docbr). */
  function cpfValid(digits) {
    if (!/^\d{11}$/.test(digits) || /^(\d)\1{10}$/.test(digits)) return false;
    for (const length of [9, 10]) {
      let sum = 0;
      for (let i = 0; i < length; i += 1) sum += Number(digits[i]) * (length + 1 - i);
      const check = ((sum * 10) % 11) % 10;
      if (check !== Number(digits[length])) return false;
    }
    return true;
  }
  function cpfFormat(digits) {
    const d = digits.slice(0, 11);
    let out = d.slice(0, 3);
    if (d.length > 3) out += `.${d.slice(3, 6)}`;
    if (d.length > 6) out += `.${d.slice(6, 9)}`;
    if (d.length > 9) out += `-${d.slice(9, 11)}`;
    return out;
  }

  const cpfInput = $("cpf-input");
  function cpfUpdate(digits) {
    state.cpf = digits.replace(/\D/g, "").slice(0, 11);
    cpfInput.value = cpfFormat(state.cpf);
    const feedback = $("cpf-feedback");
    const complete = state.cpf.length === 11;
    const valid = complete && cpfValid(state.cpf);
    feedback.className = `cpf-feedback${valid ? " ok" : complete ? " bad" : ""}`;
    if (!state.cpf) feedback.textContent = gettext("Type the 11 digits of your CPF.");
    else if (!complete) {
      const left = 11 - state.cpf.length;
      feedback.textContent = interpolate(ngettext("%s digit to go.", "%s digits to go.", left), [left]);
    } else feedback.textContent = valid ? `✓ ${gettext("Valid CPF.")}` : gettext("This CPF is not valid: check the numbers.");
    cpfInput.setAttribute("aria-invalid", String(complete && !valid));
    $("cpf-use").disabled = !valid;
  }
  cpfInput.addEventListener("input", () => cpfUpdate(cpfInput.value));
  $("cpf-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (cpfValid(state.cpf)) placeOrder({ cpf: state.cpf });
  });
  (() => {
    const press = (key) => {
      if (key === "back") cpfUpdate(state.cpf.slice(0, -1));
      else if (key === "clear") cpfUpdate("");
      else cpfUpdate(state.cpf + key);
    };
    const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"];
    const label = { back: gettext("Delete"), clear: gettext("Clear") };
    $("cpf-keypad").replaceChildren(
      ...keys.map((key) =>
        el(
          "button",
          { type: "button", class: `key${label[key] ? " key-word" : ""}`, "aria-label": label[key] || null, onclick: () => press(key) },
          key === "back" ? "⌫" : label[key] || key,
        ),
      ),
    );
  })();

  function openCpf() {
    cpfUpdate(state.cpf);
    show("cpf");
  }
  $("cpf-skip").addEventListener("click", () => placeOrder({ cpf: "" }));
  $("cpf-use").addEventListener("click", () => {
    if (cpfValid(state.cpf)) placeOrder({ cpf: state.cpf });
  });

  // --- Placing the order ---------------------------------------------------------------------------

  const retryable = (error) =>
    error.status === 0 ||
    error.status >= 500 ||
    error.code === "idempotency_request_in_progress" ||
    error.code === "busy_retry";

  function orderBody(cpf) {
    const body = {
      items: state.cart.map((line) => {
        const item = { product_id: line.productId, quantity: line.quantity };
        if (line.note) item.note = line.note;
        if (line.options.length) item.options = line.options;
        return item;
      }),
    };
    if (state.dining) body.dining = state.dining;
    if (cpf) {
      body.customer_cpf = cpf;
      body.cpf_on_receipt = true;
    }
    return body;
  }

  /* One attempt = one Idempotency-Key: sent again as is after a network failure (the server answers the
   * order it already made, never a second one); a different cart or CPF is a new attempt with a new key. */
  async function placeOrder({ cpf }) {
    const body = orderBody(cpf);
    const text = JSON.stringify(body);
    if (!state.attempt || state.attempt.body !== text) state.attempt = { key: Screen.newKey(), body: text };
    const attempt = state.attempt;
    busy(gettext("Sending your order…"));
    for (let round = 0; ; round += 1) {
      try {
        const result = await api("orders/", { method: "POST", body, idempotencyKey: attempt.key });
        state.order = result.data;
        state.attempt = null;
        state.checkoutKey = null;
        return showSummary();
      } catch (error) {
        if (retryable(error) && round < RETRY_DELAYS_MS.length) {
          await sleep(RETRY_DELAYS_MS[round]);
          continue;
        }
        return placeFailed(error, cpf);
      }
    }
  }

  function placeFailed(error, cpf) {
    const p = error.problem || {};
    const back = { label: gettext("Back to your order"), run: openCart };
    if (retryable(error)) {
      return problem({
        title: gettext("No connection"),
        text: gettext("We could not confirm your order. Try again: it will not be placed twice."),
        actions: [back, { label: gettext("Try again"), primary: true, run: () => placeOrder({ cpf }) }],
      });
    }
    state.attempt = null;
    if (error.code === "out_of_stock") {
      Screen.toast(
        interpolate(gettext("Sorry, only %(available)s left of %(name)s."), { available: p.available, name: p.product_name }, true),
        7000,
      );
      refreshMenu().catch(() => {});
      return openCart();
    }
    if (error.code === "product_unavailable" || error.code === "invalid_options" || error.code === "unknown_product") {
      Screen.toast(interpolate(gettext("%s changed on the menu: please choose it again."), [p.product_name || ""]), 7000);
      if (p.product_id) state.cart = state.cart.filter((line) => line.productId !== p.product_id);
      state.etags.products = null;
      refreshMenu().catch(() => {});
      return openCart();
    }
    if (error.code === "invalid_dining") {
      return api("me/")
        .then((answer) => {
          state.me = answer.data;
          show("dining");
        })
        .catch(() => show("dining"));
    }
    if (error.code === "terminal_inactive") {
      return problem({
        title: gettext("This kiosk is out of service"),
        text: gettext("Please order at the counter."),
        actions: [{ label: gettext("OK"), primary: true, run: () => restart() }],
      });
    }
    return problem({
      title: gettext("Something went wrong"),
      text: gettext("Your order was not placed. Please try again or ask at the counter."),
      actions: [back, { label: gettext("Start over"), run: () => restart() }],
    });
  }

  function showSummary() {
    const order = state.order;
    $("summary-lines").replaceChildren(
      ...order.items.map((item) =>
        el(
          "li",
          { class: "summary-line" },
          el("span", { class: "summary-qty" }, `${item.quantity}×`),
          el(
            "div",
            { class: "summary-item" },
            el("strong", {}, item.name),
            item.options.length ? el("p", { class: "line-options" }, chosenText(item.options)) : null,
            item.note ? el("p", { class: "note" }, `${gettext("Note")}: ${item.note}`) : null,
          ),
          el("span", { class: "summary-price" }, money(item.line_total)),
        ),
      ),
    );
    const facts = [];
    if (order.dining) facts.push([gettext("Where"), diningLabel(order.dining)]);
    if (order.customer && order.cpf_on_receipt) facts.push([gettext("CPF on the receipt"), order.customer.cpf]);
    $("summary-facts").replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
    $("summary-total").textContent = money(order.total);
    show("summary");
  }

  /* The options as the order recorded them (API names, one level of combo parts). */
  function chosenText(options) {
    const byGroup = new Map();
    for (const option of options) {
      const own = option.options && option.options.length ? ` (${chosenText(option.options)})` : "";
      const quantity = option.quantity > 1 ? `${option.quantity}× ` : "";
      byGroup.set(option.group, [...(byGroup.get(option.group) || []), `${quantity}${option.name}${own}`]);
    }
    return [...byGroup].map(([group, names]) => `${group}: ${names.join(", ")}`).join(" · ");
  }

  $("summary-change").addEventListener("click", async () => {
    busy(gettext("One moment…"));
    const cancelled = await cancelOrder();
    if (cancelled) openCart();
  });
  $("summary-pay").addEventListener("click", () => checkout());

  // --- Paying: checkout, the QR, its countdown and status ------------------------------------------

  /* The checkout's key is kept until it succeeds: a retry after a failure is the same request. A new QR
   * (after a decline or expiry) is a new request with a new key. */
  async function checkout() {
    if (!state.checkoutKey) state.checkoutKey = Screen.newKey();
    busy(gettext("Preparing your QR code…"));
    for (let round = 0; ; round += 1) {
      try {
        const answer = await api(`orders/${state.order.id}/checkout/`, { method: "POST", idempotencyKey: state.checkoutKey });
        const serverDate = Date.parse(answer.headers.get("Date") || "");
        state.skew = Number.isNaN(serverDate) ? 0 : serverDate - Date.now();
        state.checkoutKey = null;
        return showPay(answer.data.payment);
      } catch (error) {
        if ((retryable(error) || error.code === "payment_provider_unavailable") && round < RETRY_DELAYS_MS.length) {
          await sleep(RETRY_DELAYS_MS[round]);
          continue;
        }
        return checkoutFailed(error);
      }
    }
  }

  function checkoutFailed(error) {
    const number = state.order.number;
    if (error.code === "payment_under_review") return underReview(number);
    if (error.code === "order_not_payable") return followPayment(); // paid or cancelled meanwhile: ask
    if (retryable(error)) {
      return problem({
        title: gettext("Payment system not answering"),
        text: gettext("Nothing was charged. Try again in a moment."),
        actions: [cancelAction(), { label: gettext("Try again"), primary: true, run: checkout }],
      });
    }
    state.checkoutKey = null;
    // No QR here (the terminal is not set up, Mercado Pago refused): the order can still be paid at the counter.
    return problem({
      title: gettext("QR payment is not available"),
      text: gettext("Please pay at the counter with your order number."),
      number,
      actions: [{ label: gettext("OK"), primary: true, run: () => restart({ cancel: false }) }],
    });
  }

  /* The API's SVG (a viewBox, no fixed size) fills the frame. Shown as an <img>, where an SVG can run nothing. */
  function qrSource(svgText) {
    return svgText ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svgText)}` : "";
  }

  function showPay(payment) {
    state.payment = payment;
    $("pay-amount").textContent = money(payment.amount);
    $("pay-qr").src = qrSource(payment.qr_svg);
    $("pay-status").textContent = gettext("Waiting for your payment…");
    const simulator = $("pay-simulator");
    simulator.hidden = true;
    try {
      const url = new URL(payment.qr_data);
      if (/^https?:$/.test(url.protocol) && url.pathname.startsWith("/mp-simulator/pay/")) {
        // The demo's simulated Mercado Pago: the QR is a link to its pay page (a real QR is not a link).
        simulator.replaceChildren(
          el("a", { href: url.href, target: "_blank", rel: "noopener", id: "pay-simulator-link" }, gettext("Demo: open the simulator's pay page")),
        );
        simulator.hidden = false;
      }
    } catch (e) {
      // not a URL: a real Mercado Pago QR
    }
    show("pay");
    startCountdown(payment);
    followPayment();
  }

  function startCountdown(payment) {
    clearInterval(timers.countdown);
    const expires = Date.parse(payment.expires_at);
    const created = Date.parse(payment.created_at);
    const now = () => Date.now() + state.skew;
    const span = Math.max(1, expires - (Number.isNaN(created) ? now() : Math.min(created, now())));
    const tick = () => {
      const left = Math.max(0, expires - now());
      const minutes = Math.floor(left / 60000);
      const seconds = Math.floor((left % 60000) / 1000);
      $("pay-countdown").textContent = interpolate(gettext("Expires in %s"), [`${minutes}:${String(seconds).padStart(2, "0")}`]);
      $("pay-countdown-fill").style.width = `${(100 * left) / span}%`;
      $("pay-countdown-fill").classList.toggle("low", left < 60000);
      if (left <= 0 && state.view === "pay") {
        clearInterval(timers.countdown);
        expired();
      }
    };
    if (Number.isNaN(expires)) {
      $("pay-countdown").textContent = "";
      return;
    }
    tick();
    timers.countdown = setInterval(tick, 1000);
  }

  /* Polls the order's payment until it is settled one way or the other (cheap: our database only). */
  function followPayment() {
    if (timers.payment) timers.payment.stop();
    timers.payment = Screen.poll(pollPayment, PAYMENT_POLL_MS);
  }
  function stopPayment() {
    if (timers.payment) timers.payment.stop();
    timers.payment = null;
    clearInterval(timers.countdown);
  }

  async function pollPayment() {
    if (!state.order) return stopPayment();
    let answer;
    try {
      answer = await api(`orders/${state.order.id}/payment/`);
    } catch (error) {
      if (error.code === "no_payment") return; // a checkout still on its way
      throw error;
    }
    const { payment, order } = answer.data;
    state.order.status = order.status;
    const inFlow = ["pay", "problem", "busy"].includes(state.view);
    if (!inFlow) return stopPayment();
    if (PAID.includes(order.status)) return done(order.number);
    if (order.status === "cancelled") {
      stopPayment();
      return problem({
        title: gettext("Order cancelled"),
        text: gettext("This order was cancelled. Nothing was charged."),
        actions: [{ label: gettext("New order"), primary: true, run: () => restart({ cancel: false }) }],
      });
    }
    if (["under_review", "charged_back", "refunded", "partially_refunded"].includes(payment.status)) {
      return underReview(order.number); // money that did not pay this order: staff must look
    }
    // Declined or expired: only for the QR on screen (an older one's news, or one shown already, is no news).
    if (state.view !== "pay" || !state.payment || payment.id !== state.payment.id) return;
    if (payment.status === "rejected") return declined();
    if (payment.status === "expired" || payment.status === "cancelled") return expired();
  }

  function cancelAction() {
    return { label: gettext("Cancel order"), run: () => confirmCancel() };
  }

  function declined() {
    clearInterval(timers.countdown);
    problem({
      title: gettext("Payment declined"),
      text: gettext("The payment was not approved. You can try again with a new QR code."),
      actions: [cancelAction(), { label: gettext("Try again"), primary: true, run: checkout }],
    });
  }

  function expired() {
    clearInterval(timers.countdown);
    problem({
      title: gettext("The QR code expired"),
      text: gettext("The time to pay ran out. Nothing was charged."),
      icon: "⏱",
      tone: "warn",
      actions: [cancelAction(), { label: gettext("Try again"), primary: true, run: checkout }],
    });
  }

  function underReview(number) {
    stopPayment();
    state.order = null; // the counter takes it from here: never cancelled from the kiosk
    problem({
      // Translators: money came in that did not pay the order; staff look at it ("Procure o balcão").
      title: gettext("Please go to the counter"),
      text: gettext("We received a payment that a staff member needs to check. Show this number at the counter:"),
      number,
      icon: "i",
      tone: "warn",
      actions: [{ label: gettext("OK"), primary: true, run: () => restart({ cancel: false }) }],
    });
    leaveAfter(REVIEW_SECONDS);
  }

  function done(number) {
    stopPayment();
    state.order = null;
    $("done-number").textContent = String(number);
    show("done");
    leaveAfter(DONE_SECONDS);
  }

  function leaveAfter(seconds) {
    clearTimeout(timers.leave);
    timers.leave = setTimeout(() => restart({ cancel: false }), seconds * 1000);
  }

  // --- Cancelling, starting over, idle -------------------------------------------------------------

  /* Cancels the placed, unpaid order (its stock goes back, its QR is cancelled at Mercado Pago).
   * Answers false when it must not be (money came in: the counter looks at it). */
  async function cancelOrder() {
    if (!state.order) return true;
    try {
      await api(`orders/${state.order.id}/cancel/`, { method: "POST" });
    } catch (error) {
      if (error.code === "payment_under_review") {
        underReview(state.order.number);
        return false;
      }
      if (error.code === "invalid_transition") {
        // Paid meanwhile: show it.
        followPayment();
        return false;
      }
      // Offline: the order stays unpaid and is cancelled by the payment timeout (cancel_stale_orders).
    }
    stopPayment();
    state.order = null;
    return true;
  }

  const confirmDialog = (() => {
    const dialog = el(
      "dialog",
      { class: "idle-dialog", id: "cancel-dialog", "aria-labelledby": "cancel-title" },
      el("h2", { id: "cancel-title" }, gettext("Cancel this order?")),
      el("p", {}, gettext("Everything you chose will be cleared.")),
      el(
        "div",
        { class: "dialog-actions" },
        el("button", { type: "button", class: "big", id: "cancel-no", onclick: () => dialog.close() }, gettext("No, keep it")),
        el(
          "button",
          {
            type: "button",
            class: "primary big",
            id: "cancel-yes",
            onclick: () => {
              dialog.close();
              restart();
            },
          },
          gettext("Yes, cancel"),
        ),
      ),
    );
    $("kiosk").append(dialog);
    return dialog;
  })();
  function confirmCancel() {
    if (!state.cart.length && !state.order) return restart();
    confirmDialog.showModal();
    $("cancel-no").focus();
  }

  function restartState() {
    state.dining = "";
    state.cart = [];
    state.cpf = "";
    state.draft = null;
    state.attempt = null;
    state.order = null;
    state.checkoutKey = null;
    state.payment = null;
  }

  async function restart({ cancel = true } = {}) {
    clearTimeout(timers.leave);
    idle.close();
    if (confirmDialog.open) confirmDialog.close();
    if (cancel && state.order) {
      busy(gettext("One moment…"));
      if (!(await cancelOrder())) return;
    }
    stopPayment();
    restartState();
    if (resetLanguage()) return;
    show("start");
  }

  /* The next customer starts in the site's language: a language the last one chose is put back through the
   * start screen's own language form (Django's set_language), which reloads the kiosk on its start screen.
   * Answers whether it did (the page is on its way). */
  function resetLanguage() {
    if (!DEFAULT_LANGUAGE || Screen.language().toLowerCase() === DEFAULT_LANGUAGE) return false;
    const button = [...$("start-language").querySelectorAll("button[name=language]")].find(
      (candidate) => candidate.value.toLowerCase() === DEFAULT_LANGUAGE,
    );
    if (!button) return false;
    if (timers.menu) timers.menu.stop();
    idle.close();
    busy(gettext("One moment…"));
    $("start-language").requestSubmit(button);
    return true;
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const action = target.dataset.action;
    if (action === "restart") restart();
    else if (action === "menu") openMenu();
    else if (action === "cart") openCart();
    else if (action === "cancel-order") confirmCancel();
  });

  /* After a while without a touch: "Are you still there?", then back to the start (the unpaid order is
   * cancelled). Not while a QR waits to be paid (it has its own clock). On the start screen only to put the
   * site's language back, with no question: nothing is lost. */
  const idle = (() => {
    const WATCHED = ["dining", "menu", "product", "cart", "cpf", "summary", "problem"];
    const dialog = $("idle-dialog");
    let timer = null;
    let ticker = null;
    const clear = () => {
      clearTimeout(timer);
      clearInterval(ticker);
      timer = null;
    };
    const warn = () => {
      let left = IDLE_WARNING_SECONDS;
      const say = () => {
        $("idle-text").textContent = interpolate(
          ngettext("Starting over in %s second.", "Starting over in %s seconds.", left),
          [left],
        );
      };
      say();
      dialog.showModal();
      $("idle-stay").focus();
      ticker = setInterval(() => {
        left -= 1;
        if (left <= 0) {
          clear();
          dialog.close();
          restart();
          return;
        }
        say();
      }, 1000);
    };
    const control = {
      arm() {
        if (dialog.open) return;
        clear();
        if (WATCHED.includes(state.view)) timer = setTimeout(warn, IDLE_SECONDS * 1000);
        else if (state.view === "start") timer = setTimeout(resetLanguage, IDLE_SECONDS * 1000);
      },
      close() {
        clear();
        if (dialog.open) dialog.close();
      },
    };
    $("idle-stay").addEventListener("click", () => {
      control.close();
      control.arm();
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      control.close();
      control.arm();
    });
    for (const kind of ["pointerdown", "keydown", "input", "wheel"]) {
      document.addEventListener(kind, () => control.arm(), { passive: true, capture: true });
    }
    return control;
  })();

  start();
})();
