// Replaying a dead letter: a <dialog> asks for confirmation, then the replay is POSTed.
"use strict";

(() => {
  const open = document.getElementById("replay-open");
  const dialog = document.getElementById("replay-dialog");
  if (!open || !dialog) return;
  const confirmButton = document.getElementById("replay-confirm");
  const cancel = document.getElementById("replay-cancel");
  const result = document.getElementById("replay-result");

  open.addEventListener("click", () => {
    result.textContent = "";
    result.classList.remove("error");
    dialog.showModal();
    confirmButton.focus();
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
        body: JSON.stringify({ confirm: true }),
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      failed = !response.ok;
      text = response.ok ? body.message : `Not replayed: ${body.error || response.statusText}`;
    } catch (error) {
      text = `Not replayed: ${error.message}`;
    } finally {
      confirmButton.disabled = false;
      dialog.close();
    }
    result.classList.toggle("error", failed);
    result.textContent = text;
    open.focus();
  });
})();
