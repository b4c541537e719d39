"use strict";
/* The pickup board on a TV: one store's numbers in preparation and ready (GET /pickup-board/?store=<slug>,
 * public, no personal data), polled every few seconds; a number that just became ready is highlighted for a
 * while. Sends If-None-Match when the answer carried an ETag. */
(() => {
  const { el, api, time } = Screen;
  const root = document.getElementById("pickup");
  const store = root.dataset.store;
  const timeZone = root.dataset.timeZone || undefined;
  const POLL_MS = 3000;
  const HIGHLIGHT_MS = 30 * 1000; // a newly ready number stands out this long
  const state = { etag: null, ready: null, since: new Map() };
  const SIZES = ["few", "some", "many", "most", "least"]; // pickup.css: each a step smaller

  function numbers(list, values, fresh) {
    list.replaceChildren(
      ...values.map((n) =>
        el("li", { class: fresh(n) ? "number new" : "number", dataset: { number: n } }, String(n)),
      ),
    );
    fit(list);
  }

  /* The largest size at which every number of the lane shows (the lane clips what would overflow it). */
  function fit(list) {
    const lane = list.closest(".lane");
    for (const size of SIZES) {
      list.dataset.size = size;
      if (lane.scrollHeight <= lane.clientHeight + 1) return;
    }
  }

  function show(board) {
    const ready = board.ready || [];
    const preparing = board.in_preparation || [];
    const arrived = state.ready ? ready.filter((n) => !state.ready.includes(n)) : [];
    for (const n of arrived) state.since.set(n, Date.now());
    for (const n of state.since.keys()) if (!ready.includes(n)) state.since.delete(n);
    state.ready = ready;
    // Newest ready first: the number someone is looking for is where the eye lands.
    const readyNewestFirst = [...ready].sort((a, b) => (state.since.get(b) || 0) - (state.since.get(a) || 0));
    const fresh = (n) => state.since.has(n) && Date.now() - state.since.get(n) < HIGHLIGHT_MS;
    numbers(document.getElementById("ready"), readyNewestFirst, fresh);
    numbers(document.getElementById("preparing"), preparing, () => false);
    if (arrived.length) {
      document.getElementById("announce").textContent = interpolate(
        ngettext("Ready: number %s", "Ready: numbers %s", arrived.length),
        [arrived.join(", ")],
      );
    }
  }

  async function load() {
    try {
      const result = await api(`pickup-board/?store=${encodeURIComponent(store)}`, {
        auth: false,
        etag: state.etag || undefined,
      });
      document.getElementById("offline").hidden = true;
      if (result.status === 304) return refreshHighlights();
      state.etag = result.headers.get("ETag");
      state.board = result.data;
      show(result.data);
    } catch (error) {
      document.getElementById("offline").hidden = false;
      // Quietly: a TV has nobody to read a toast; the note says it is reconnecting, and polling backs off.
      throw new Error(error.message);
    }
  }

  /* The highlight fades with time even when the board itself has not changed. */
  function refreshHighlights() {
    for (const node of document.querySelectorAll("#ready .number.new")) {
      const since = state.since.get(Number(node.dataset.number));
      if (!since || Date.now() - since >= HIGHLIGHT_MS) node.classList.remove("new");
    }
  }

  function tick() {
    document.getElementById("clock").textContent = time(new Date().toISOString(), timeZone);
    refreshHighlights();
  }

  Screen.poll(load, POLL_MS);
  window.addEventListener("resize", () => document.querySelectorAll(".numbers").forEach(fit));
  tick();
  setInterval(tick, 5000);
})();
