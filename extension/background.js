// certdesk renewal: the service worker. One port from a portal tab = one native helper
// process. The page's origin is the one the BROWSER gives (port.sender.origin), written over
// whatever the page sent: the helper checks it against the portal it is pinned to.
"use strict";

const HOST = "org.certdesk.helper"; // the native messaging host's name (its manifest file)
const COMMANDS = ["hello", "status", "renew", "pickup", "change_pin"];

chrome.runtime.onConnect.addListener((tab) => {
  if (tab.name !== "certdesk" || !tab.sender || !tab.sender.tab) {
    tab.disconnect();
    return;
  }
  // Firefox gives sender.url only; Chromium gives sender.origin.
  const origin = tab.sender.origin || new URL(tab.sender.url).origin;
  let helper = null;

  tab.onMessage.addListener((request) => {
    if (helper || typeof request !== "object" || !COMMANDS.includes(request.command)) {
      tab.postMessage({ type: "error", code: "extension.bad_request" });
      return;
    }
    helper = chrome.runtime.connectNative(HOST);
    helper.onMessage.addListener((answer) => tab.postMessage(answer));
    helper.onDisconnect.addListener(() => {
      // Not installed, crashed or finished: the page tells which from what it got before.
      const error = chrome.runtime.lastError;
      tab.postMessage({ type: "disconnected", detail: error ? error.message : "" });
      tab.disconnect();
    });
    helper.postMessage({
      id: request.id,
      command: request.command,
      serial: typeof request.serial === "string" ? request.serial : undefined,
      origin: origin,
    });
  });
  tab.onDisconnect.addListener(() => helper && helper.disconnect());
});
