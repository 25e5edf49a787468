// certdesk renewal: the content script, injected only into the portal's pages (manifest
// "matches"). The page and this script share the DOM, not JavaScript objects, so they talk
// with window.postMessage; each page request gets its own port to the service worker.
"use strict";

function toPage(message) {
  window.postMessage(Object.assign({ certdesk: "answer" }, message), window.location.origin);
}

window.addEventListener("message", (event) => {
  if (event.source !== window || event.origin !== window.location.origin) return;
  const data = event.data;
  if (!data || typeof data !== "object") return;
  if (data.certdesk === "ping") {
    toPage({ id: null, type: "pong" }); // the page knows the extension is here
    return;
  }
  if (data.certdesk !== "request") return;
  const port = chrome.runtime.connect({ name: "certdesk" });
  port.onMessage.addListener((answer) => {
    toPage(Object.assign({}, answer, { id: data.id }));
    if (answer.type === "result" || answer.type === "error") port.disconnect(); // helper exits
  });
  port.onDisconnect.addListener(() => toPage({ id: data.id, type: "closed" }));
  port.postMessage({ id: data.id, command: data.command, serial: data.serial });
});
