// The overview's live part: each `overview` event from the server replaces the figures in place.
"use strict";

(() => {
  const root = document.querySelector('[data-testid="overview"]');
  if (!root || !window.EventSource) return;

  const el = (tag, attrs = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  };
  const cell = (text, cls) => el("td", cls ? { class: cls } : {}, [String(text)]);

  // Same words as the server's format_duration: 42s, 12m, 3h 05m, 2d 04h.
  const duration = (seconds) => {
    const whole = Math.floor(seconds);
    const days = Math.floor(whole / 86400);
    const hours = Math.floor((whole % 86400) / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (days) return `${days}d ${pad(hours)}h`;
    if (hours) return `${hours}h ${pad(minutes)}m`;
    return minutes ? `${minutes}m` : `${whole % 60}s`;
  };

  const fill = (id, rows, makeRow, columns) => {
    const body = document.getElementById(id);
    const made = rows.map(makeRow);
    if (!made.length && body.dataset.empty) {
      made.push(el("tr", { class: "empty" }, [el("td", { colspan: String(columns) }, [body.dataset.empty])]));
    }
    body.replaceChildren(...made);
  };

  const updateTopics = (topics) => {
    const body = document.getElementById("topic-rows");
    for (const row of topics) {
      let tr = body.querySelector(`tr[data-topic="${CSS.escape(row.topic)}"]`);
      if (!tr) {
        tr = el("tr", { "data-testid": "topic-row", "data-topic": row.topic }, [
          el("th", { scope: "row" }, [row.topic]),
          el("td", { class: "num", "data-testid": "topic-messages" }),
          el("td", { class: "num", "data-testid": "topic-rate" }),
        ]);
        body.append(tr);
      }
      tr.querySelector('[data-testid="topic-messages"]').textContent = String(row.messages);
      tr.querySelector('[data-testid="topic-rate"]').textContent = row.rate_per_s.toFixed(1);
    }
  };

  const update = (snapshot) => {
    updateTopics(snapshot.topics);
    fill("lag-rows", snapshot.lag, (row) =>
      el("tr", { "data-testid": "lag-row", "data-group": row.group, "data-topic": row.topic }, [
        cell(row.group), cell(row.topic), cell(row.lag, "num"),
      ]), 3);
    fill("dead-letter-rows", snapshot.dead_letters, (row) => {
      const link = el("a", { href: `/dead-letters?reason=${encodeURIComponent(row.reason)}` }, [row.reason]);
      return el("tr", { "data-testid": "dead-letter-reason", "data-reason": row.reason }, [
        el("td", {}, [link]), cell(row.count, "num"),
      ]);
    }, 2);
    fill("escalation-rows", snapshot.open_escalations, (row) =>
      el("tr", { "data-testid": "open-escalations-level", "data-level": String(row.level) }, [
        cell(row.level), cell(row.count, "num"), cell(duration(row.oldest_age_s), "num"),
      ]), 3);
    fill("stuck-rows", snapshot.stuck_handoffs, (row) =>
      el("tr", { "data-testid": "stuck-handoff", "data-case-id": row.case_id }, [
        el("td", {}, [el("a", { href: `/cases/${encodeURIComponent(row.case_id)}` }, [row.case_id])]),
        cell(row.from), cell(row.to),
        el("td", {}, [el("time", { datetime: row.deadline }, [row.deadline])]),
        cell(duration(row.overdue_s), "num"),
      ]), 5);
    const errors = document.getElementById("overview-errors");
    errors.replaceChildren(...snapshot.errors.map((text) => el("li", {}, [text])));
    const updated = document.getElementById("overview-updated");
    updated.setAttribute("datetime", snapshot.at);
    // As the server writes it: 2026-11-29 14:11:24Z.
    updated.textContent = `${snapshot.at.slice(0, 19).replace("T", " ")}Z`;
  };

  const status = document.getElementById("overview-live");
  const source = new EventSource(root.dataset.stream);
  source.addEventListener("overview", (event) => {
    status.textContent = "";
    update(JSON.parse(event.data));
  });
  // EventSource reconnects by itself; say so while it does.
  source.addEventListener("error", () => {
    status.textContent = "(live updates interrupted; reconnecting)";
  });
})();
