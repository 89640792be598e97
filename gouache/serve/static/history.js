// Shared by the server's page and the exported page (gouache export --web): the status line, the
// error line, and the history kept in the browser. Each page's app.js defines $, state,
// HISTORY_KEY, HISTORY_MAX and renderHistory(); these functions run after it has loaded.

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
