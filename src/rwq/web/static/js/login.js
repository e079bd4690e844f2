// The login page: a token (`rwq token create`) exchanged for a session cookie.
import { ApiFailure, api, clear, el, main } from "./common.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/queues";
  // Only a path of this server: never "//host" or "https://...".
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/queues";
}

const input = el("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true, placeholder: "rwq_name.secret", size: 48 });
const message = el("p", { id: "login-error", class: "lvl-error", role: "alert" });
const form = el("form", { id: "login", class: "login" },
  el("label", { for: "token" }, "Token"),
  input,
  el("button", { type: "submit", class: "primary" }, "Log in"),
  message,
  el("p", { class: "hint" }, "Create one with ", el("code", {}, "rwq token create NAME --permission observer"),
    ". It is exchanged for a session cookie (HttpOnly, this site only); the token itself is not kept in the browser."));
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  message.textContent = "";
  try {
    await api("/api/v1/session", { method: "POST", body: { token: input.value.trim() } });
    location.assign(nextPage());
  } catch (error) {
    message.textContent = error instanceof ApiFailure ? error.message : String(error);
  }
});
clear(main(), el("h1", {}, "Log in to rwq"), form);
document.body.dataset.ready = "true";
input.focus();
