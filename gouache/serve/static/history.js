// Shared by the server's page and the exported page (gouache export --web): the status line, the
// error line, and the History section with the pictures kept in the browser. Each page's app.js
// defines $, state, HISTORY_KEY, HISTORY_MAX and renderHistory() (which calls renderCards with
// what its cards show); these functions run after it has loaded. A page holds an empty
// <section id="history-section"> and calls mountHistory() once at start-up.

function setStatus(kind, text) {
  const el = $("status");
  el.className = `status ${kind}`;
  el.textContent = text;
}

function showError(message) {
  const el = $("error");
  el.hidden = !message;
  el.textContent = message || "";
}

// ---------- history ----------
function loadHistory() {
  try { state.history = JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch (err) { state.history = []; }
  if (!Array.isArray(state.history)) state.history = [];
}

function saveHistory() {
  for (;;) {
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(state.history)); return; } catch (err) {
      if (!state.history.length) return;
      state.history.pop(); // storage full: forget the oldest
    }
  }
}

// One element: <tag class="className">text</tag>, with children.
function element(tag, className, text, ...children) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text) el.textContent = text;
  el.append(...children);
  return el;
}

// The History section's heading, Clear button, empty note and list, built into #history-section.
function mountHistory() {
  const section = $("history-section");
  section.className = "history";
  section.setAttribute("aria-labelledby", "history-title");
  const title = element("h2", "", "History");
  title.id = "history-title";
  const clear = element("button", "ghost", "Clear");
  clear.type = "button";
  clear.id = "clear";
  clear.hidden = true;
  clear.addEventListener("click", () => { state.history = []; saveHistory(); renderHistory(); });
  const empty = element("p", "empty", "Finished pictures collect here, with their settings and a download link.");
  empty.id = "history-empty";
  const list = element("ol", "cards");
  list.id = "history";
  section.replaceChildren(element("div", "history-head", "", title, clear), empty, list);
}

// The cards of state.history: describe(entry) gives { thumbs: [elements], negative: text or "",
// chips: [[name, value], ...] }; every card shows the prompt and a "Use settings" button.
function renderCards(describe, reuse) {
  $("history").replaceChildren(...state.history.map((entry) => {
    const { thumbs, negative, chips } = describe(entry);
    const box = element("div", "thumbs", "", ...thumbs);
    if (thumbs.length === 1) box.dataset.single = "";
    const list = element("dl", "chips");
    appendChips(list, chips);
    const button = element("button", "ghost reuse", "Use settings");
    button.type = "button";
    button.addEventListener("click", () => reuse(entry));
    const meta = element("div", "meta", "", element("p", "card-prompt", entry.prompt),
      ...(negative === undefined ? [] : [element("p", "card-negative", negative)]), list,
      element("div", "card-actions", "", button));
    return element("li", "card", "", box, meta);
  }));
  $("history-empty").hidden = state.history.length > 0;
  $("clear").hidden = state.history.length === 0;
}

function addHistory(entry) {
  state.history.unshift({ ...entry, created: Date.now() });
  state.history.length = Math.min(state.history.length, HISTORY_MAX);
  saveHistory();
  renderHistory();
}

// A history card's settings: one <div><dt>name</dt><dd>value</dd></div> for each pair.
function appendChips(chips, pairs) {
  for (const [name, value] of pairs) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    div.append(dt, dd);
    chips.append(div);
  }
}
