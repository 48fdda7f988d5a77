// Replaying webhook deliveries: a <dialog> asks for confirmation, then the replay is POSTed.
// A button with data-replay (JSON: what to replay) or a form with data-replay-range (JSON:
// the rest of it; the form gives since and until, in UTC) opens the dialog.
"use strict";

(() => {
  const dialog = document.getElementById("replay-dialog");
  if (!dialog) return;
  const question = document.getElementById("replay-question");
  const confirmButton = document.getElementById("replay-confirm");
  const cancel = document.getElementById("replay-cancel");
  const result = document.getElementById("replay-result");
  let chosen = null;
  let opener = null;

  function say(text, failed) {
    result.classList.toggle("error", failed);
    result.textContent = text;
  }

  function ask(body, text, from) {
    chosen = body;
    opener = from;
    question.textContent = text;
    say("", false);
    dialog.showModal();
    confirmButton.focus();
  }

  document.querySelectorAll("button[data-replay]").forEach((button) => {
    button.addEventListener("click", () =>
      ask(JSON.parse(button.dataset.replay), button.dataset.question, button),
    );
  });

  document.querySelectorAll("form[data-replay-range]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = JSON.parse(form.dataset.replayRange || "{}");
      const since = form.elements.since.value;
      const until = form.elements.until.value;
      if (!since && !until) {
        say("Give a time to replay from, or one to replay until.", true);
        return;
      }
      if (since) body.since = since;
      if (until) body.until = until;
      const range = [since && `made at or after ${since}`, until && `made before ${until}`]
        .filter(Boolean)
        .join(" and ");
      const whose = body.subscription ? `of subscription ${body.subscription}` : "of every active subscription";
      ask(body, `Replay the deliveries ${whose} ${range} (UTC)?`, form.querySelector("button"));
    });
  });

  cancel.addEventListener("click", () => dialog.close());

  confirmButton.addEventListener("click", async () => {
    confirmButton.disabled = true;
    let text;
    let failed = true;
    try {
      const response = await fetch(dialog.dataset.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ ...chosen, confirm: true }),
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      failed = !response.ok;
      text = response.ok
        ? `${body.message}; reload the page to follow them.`
        : `Not replayed: ${body.error || response.statusText}`;
    } catch (error) {
      text = `Not replayed: ${error.message}`;
    } finally {
      confirmButton.disabled = false;
      dialog.close();
    }
    say(text, failed);
    if (opener) opener.focus();
  });
})();
