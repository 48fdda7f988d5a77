// The escalation board's live part: rows follow /api/stream/escalations, and a team's
// acknowledge and resolve forms post to the API. A row's status changes only when the
// escalation service has applied the action (the stream says so), never on the click.
"use strict";

(() => {
  const board = document.getElementById("escalation-board");
  const body = document.getElementById("escalation-rows");
  const skeleton = document.getElementById("escalation-row");
  if (!board || !body || !skeleton || !window.ketenbus) return;
  const { postJSON, formatAge, formatTime } = window.ketenbus;
  const OPEN = new Set(["raised", "acknowledged"]);
  const live = document.getElementById("escalations-live");
  const empty = body.querySelector("tr.empty");

  const rowOf = (id) => body.querySelector(`tr[data-escalation-id="${CSS.escape(id)}"]`);
  const field = (tr, name) => tr.querySelector(`[data-field="${name}"]`);
  const rows = () => Array.from(body.querySelectorAll('tr[data-testid="escalation"]'));

  // Highest level first, then oldest: the order the server renders.
  const before = (a, b) =>
    Number(a.dataset.level) > Number(b.dataset.level) ||
    (a.dataset.level === b.dataset.level && a.dataset.raisedAt < b.dataset.raisedAt);

  const place = (tr) => {
    const next = rows().find((other) => other !== tr && before(tr, other));
    if (next) body.insertBefore(tr, next);
    else body.insertBefore(tr, empty);
  };

  const tick = () => {
    const now = Date.now();
    for (const tr of rows()) {
      const raised = Date.parse(tr.dataset.raisedAt);
      if (!Number.isNaN(raised)) field(tr, "age").textContent = formatAge((now - raised) / 1000);
    }
    if (empty) empty.hidden = rows().length > 0;
  };

  // A team acts only on what alerts it: an escalation that climbed past it is shown, not acted on.
  const showActions = (tr, status, team) => {
    const ours = !board.dataset.team || board.dataset.team === team;
    const ack = tr.querySelector('[data-testid="acknowledge"]');
    const res = tr.querySelector('[data-testid="resolve"]');
    if (ack) ack.hidden = !ours || status !== "raised";
    if (res) res.hidden = !ours || !OPEN.has(status);
    if (!ours || !OPEN.has(status)) {
      for (const form of tr.querySelectorAll("form")) form.hidden = true;
    } else if (status !== "raised") {
      const form = tr.querySelector('form[data-form="acknowledge"]');
      if (form) form.hidden = true;
    }
  };

  const update = (item) => {
    let tr = rowOf(item.escalation_id);
    if (!tr) {
      if (!OPEN.has(item.status)) return; // closed before this page ever showed it
      tr = skeleton.content.firstElementChild.cloneNode(true);
      wire(tr);
    }
    const moved = tr.dataset.level !== String(item.level) || !tr.isConnected;
    Object.assign(tr.dataset, {
      escalationId: item.escalation_id,
      status: item.status,
      caseId: item.case_id,
      level: String(item.level),
      raisedAt: item.raised_at,
    });
    const level = field(tr, "level");
    level.textContent = String(item.level);
    level.className = `badge level-${item.level}`;
    const status = field(tr, "status");
    status.textContent = item.outcome ? `${item.status}: ${item.outcome}` : item.status;
    status.className = `badge ${item.status}`;
    field(tr, "team").textContent = item.team;
    field(tr, "trigger").textContent = item.trigger;
    field(tr, "cause").textContent = item.cause;
    const kase = field(tr, "case");
    kase.textContent = item.case_id;
    if (kase.tagName === "A") kase.href = `/cases/${encodeURIComponent(item.case_id)}`;
    const due = field(tr, "acknowledge_by");
    due.dateTime = item.acknowledge_by;
    due.textContent = formatTime(item.acknowledge_by);
    showActions(tr, item.status, item.team);
    if (!OPEN.has(item.status)) {
      const result = field(tr, "result");
      if (result) result.textContent = `${item.status} at ${formatTime(item.resolved_at)}`;
    }
    if (moved) place(tr);
  };

  const snapshot = (items) => {
    const open = new Set(items.map((item) => item.escalation_id));
    // An open row the snapshot does not list closed while the stream was away.
    for (const tr of rows()) {
      if (OPEN.has(tr.dataset.status) && !open.has(tr.dataset.escalationId)) tr.remove();
    }
    items.forEach(update);
    tick();
  };

  const send = async (tr, form, action, payload) => {
    const submit = form.querySelector('button[type="submit"]');
    const result = field(tr, "result");
    submit.disabled = true;
    result.textContent = "Sending…";
    try {
      const url = `/api/escalations/${encodeURIComponent(tr.dataset.escalationId)}/${action}`;
      const reply = await postJSON(url, payload);
      result.textContent = `Sent (event ${reply.event_id}); waiting for the escalation service…`;
      form.hidden = true;
    } catch (error) {
      result.textContent = `Not sent: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  };

  const text = (form, name) => {
    const value = form.elements[name].value.trim();
    return value ? value : null;
  };

  function wire(tr) {
    const forms = {
      acknowledge: tr.querySelector('form[data-form="acknowledge"]'),
      resolve: tr.querySelector('form[data-form="resolve"]'),
    };
    for (const action of Object.keys(forms)) {
      const button = tr.querySelector(`[data-testid="${action}"]`);
      const form = forms[action];
      if (!button || !form) continue;
      button.addEventListener("click", () => {
        for (const other of Object.values(forms)) if (other !== form) other.hidden = true;
        form.hidden = !form.hidden;
        if (!form.hidden) form.querySelector("textarea, select").focus();
      });
    }
    if (forms.acknowledge) {
      forms.acknowledge.addEventListener("submit", (event) => {
        event.preventDefault();
        send(tr, forms.acknowledge, "acknowledge", { note: text(forms.acknowledge, "note") });
      });
    }
    if (forms.resolve) {
      const outcome = forms.resolve.elements.outcome;
      const handoff = forms.resolve.querySelector("[data-handoff]");
      const toggle = () => {
        handoff.hidden = outcome.value !== "handoff-forced";
      };
      outcome.addEventListener("change", toggle);
      toggle();
      forms.resolve.addEventListener("submit", (event) => {
        event.preventDefault();
        const forced = outcome.value === "handoff-forced";
        send(tr, forms.resolve, "resolve", {
          outcome: outcome.value,
          note: text(forms.resolve, "note"),
          handoff_to: forced ? forms.resolve.elements.handoff_to.value : null,
        });
      });
    }
  }

  rows().forEach(wire);
  for (const due of body.querySelectorAll('time[data-field="acknowledge_by"]')) {
    due.textContent = formatTime(due.dateTime);
  }
  tick();
  setInterval(tick, 5000);
  // One connection for both events: the changes follow on from exactly that snapshot.
  let pause = 1000;
  const connect = () => {
    const source = new EventSource(board.dataset.stream, { withCredentials: true });
    const parsed = (handler) => (event) => handler(JSON.parse(event.data));
    source.addEventListener("open", () => {
      pause = 1000;
      if (live) live.textContent = "live";
    });
    source.addEventListener("snapshot", parsed(snapshot));
    source.addEventListener("escalation", parsed(update));
    source.addEventListener("error", () => {
      if (live) live.textContent = "reconnecting…";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, pause); // the browser gave up (an HTTP error): start again
        pause = Math.min(pause * 2, 30000);
      }
    });
  };
  connect();
})();
