// The portal's renewal panel (templates/renewal.html): finds the certdesk extension, shows
// what the helper reads on the USB key, then drives Renew now / Get certificate / Change PIN
// and shows the helper's progress and result. Served as a file: the portal's CSP allows no inline script.
"use strict";

(function () {
  const panel = document.getElementById("renewal");
  if (!panel) return;
  const t = panel.dataset;
  const lang = t.lang === "zh-CN" ? "zh-CN" : "en";
  const pending = {}; // request id -> {onProgress, onDone}
  let nextId = 1;
  let extension = false;

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  function text(messages) {
    return (messages && (messages[lang] || messages.en)) || "";
  }

  // Page -> content script -> service worker -> helper, and the answers back.
  window.addEventListener("message", (event) => {
    if (event.source !== window || event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.certdesk !== "answer") return;
    if (data.type === "pong") {
      extension = true;
      return;
    }
    const request = pending[data.id];
    if (!request) return;
    if (data.type === "progress") {
      request.onProgress(text(data.messages));
      return;
    }
    delete pending[data.id];
    request.onDone(data);
  });

  function ask(command, onProgress) {
    return new Promise((resolve) => {
      const id = nextId++;
      pending[id] = { onProgress: onProgress || (() => {}), onDone: resolve };
      window.postMessage(
        { certdesk: "request", id: id, command: command, serial: t.serial },
        window.location.origin
      );
    });
  }

  // The helper's refusal as the CLI gives it: [code] message. A port closed with no answer
  // means the helper program is not installed (or could not start).
  function failure(answer) {
    if (answer.type === "error" && answer.code) {
      return "[" + answer.code + "] " + text(answer.messages);
    }
    return null;
  }

  function noHelper(answer) {
    return answer.type === "disconnected" || answer.type === "closed";
  }

  function showResult(message, ok) {
    const result = document.getElementById("renewal-result");
    result.textContent = message;
    result.className = ok ? "notice" : "problem";
    result.hidden = false;
  }

  function showStatus(status) {
    const cert = status.certificates[0];
    document.getElementById("ts-token").textContent = status.token;
    document.getElementById("ts-holder").textContent = cert.holder + " (" + cert.unit + ")";
    document.getElementById("ts-serial").textContent = cert.serial;
    document.getElementById("ts-until").textContent = (cert.not_after || "").slice(0, 16).replace("T", " ") + " UTC";
    document.getElementById("ts-days").textContent = cert.days_left;
    document.getElementById("ts-window").textContent = cert.window_open
      ? t.tWindowOpen
      : t.tWindowClosed;
    show("token-status", true);
  }

  function refreshStatus() {
    ask("status").then((answer) => {
      if (answer.type === "result") showStatus(answer.result);
    });
  }

  // After a renewal: the "replaced by" page's steps, with the new serial written in.
  function showNextLogin(serial) {
    document.querySelectorAll("#next-login li").forEach((item) => {
      item.textContent = item.textContent.replace("{new}", serial);
    });
    show("next-login", true);
  }

  function run(button) {
    const steps = document.getElementById("renewal-progress");
    steps.textContent = "";
    document.getElementById("renewal-result").hidden = true;
    button.disabled = true;
    const step = (line) => {
      const item = document.createElement("li");
      item.textContent = line;
      steps.appendChild(item);
    };
    ask(button.dataset.command, step).then((answer) => {
      const r = answer.result;
      if (answer.type === "result" && button.dataset.command === "change_pin") {
        showResult(t.tPinChanged.replace("%(token)s", r.token), true);
        button.disabled = false;
        return;
      }
      if (answer.type === "result") {
        showResult(
          t.tDone
            .replace("%(serial)s", r.serial)
            .replace("%(start)s", r.not_before.slice(0, 10))
            .replace("%(end)s", r.not_after.slice(0, 10)),
          true
        );
        showNextLogin(r.serial);
        t.serial = r.serial; // the token's certificate now (Change PIN finds the token by it)
        refreshStatus(); // the box above shows the new certificate, not the one just removed
        return;
      }
      showResult(failure(answer) || t.tUnreachable, false);
      button.disabled = false;
    });
  }

  function start() {
    if (!extension) {
      show("no-extension", true);
      panel.dataset.state = "no-extension";
      return;
    }
    ask("status").then((answer) => {
      if (noHelper(answer)) {
        show("no-helper", true);
        panel.dataset.state = "no-helper";
        return;
      }
      panel.dataset.state = answer.type === "result" ? "ready" : "error";
      if (answer.type === "result") showStatus(answer.result);
      else showResult(failure(answer) || t.tUnreachable, false);
      document.querySelectorAll("#renewal button[data-command]").forEach((button) => {
        button.disabled = false;
        button.addEventListener("click", () => run(button));
      });
    });
  }

  // The content script answers a ping at once when the extension is installed.
  window.postMessage({ certdesk: "ping" }, window.location.origin);
  showResult(t.tWaiting, true);
  setTimeout(() => {
    document.getElementById("renewal-result").hidden = true;
    start();
  }, 800);
})();
