// Ketenbus console: small shared helpers for the pages (vanilla ES2020, no build step).
"use strict";

window.ketenbus = (() => {
  const LOGIN = "/login?next=";

  function toLogin() {
    window.location.assign(LOGIN + encodeURIComponent(location.pathname + location.search));
  }

  // Follow server-sent events `eventName` at `url`; `onData` gets each event's parsed JSON.
  // EventSource retries by itself after a dropped connection; when the browser gives up
  // (an HTTP error, such as 401 after the session ended) this starts it again with a
  // growing pause, or goes to the login page if the session is gone.
  // Options: onStatus("live" | "reconnecting"). Returns {close()}.
  function sse(url, eventName, onData, options = {}) {
    const onStatus = options.onStatus || (() => {});
    let source = null;
    let pause = 1000;
    let timer = null;
    let closed = false;

    function open() {
      source = new EventSource(url, { withCredentials: true });
      source.addEventListener("open", () => {
        pause = 1000;
        onStatus("live");
      });
      source.addEventListener(eventName, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (error) {
          console.error("ketenbus.sse: not JSON", eventName, error);
          return;
        }
        onData(data);
      });
      source.addEventListener("error", () => {
        onStatus("reconnecting");
        if (source.readyState === EventSource.CLOSED && !closed) {
          retry();
        }
      });
    }

    async function retry() {
      clearTimeout(timer);
      try {
        const me = await fetch("/api/whoami", { credentials: "same-origin" });
        if (me.status === 401) {
          toLogin();
          return;
        }
      } catch (_) {
        // The console itself is unreachable: try again below.
      }
      timer = setTimeout(() => {
        if (!closed) open();
      }, pause);
      pause = Math.min(pause * 2, 30000);
    }

    open();
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        if (source) source.close();
      },
    };
  }

  async function request(method, url, body) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const message = (data && data.error) || `${response.status} ${response.statusText}`;
      const error = new Error(message);
      error.status = response.status;
      error.body = data;
      throw error;
    }
    return data;
  }

  // POST `body` as JSON with the session cookie; the parsed reply, or throws an Error
  // whose message is the server's {"error": ...} (and .status the HTTP status).
  function postJSON(url, body) {
    return request("POST", url, body === undefined ? {} : body);
  }

  function getJSON(url) {
    return request("GET", url);
  }

  // "45 s", "12 min", "3 h 5 min", "2 d 4 h": an age for people.
  function formatAge(seconds) {
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  // An ISO time in UTC, as the server-rendered pages and the CLI show it
  // (2026-11-29 14:24:05Z): agencies in one chain must read the same clock.
  // The input unchanged if it is not a time.
  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
  }

  return { sse, postJSON, getJSON, formatAge, formatTime, toLogin };
})();
