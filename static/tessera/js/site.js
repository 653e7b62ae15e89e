// Site-wide behaviour: the phone navigation toggle and the per-user notification socket.

const toggle = document.querySelector(".nav-toggle");
const nav = document.getElementById("site-nav");
if (toggle && nav) {
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", String(!open));
    nav.classList.toggle("open", !open);
  });
}

export function toast(text) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = document.createElement("div");
  item.className = "toast";
  item.textContent = text;
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

function connectNotifications(delay = 1000) {
  if (!document.querySelector(".site-nav form[action$='/logout/']")) return; // logged out
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/notifications/`);
  socket.addEventListener("message", (event) => {
    const data = JSON.parse(event.data);
    if (data.text) toast(data.text);
    document.dispatchEvent(new CustomEvent("tessera:notification", { detail: data }));
  });
  socket.addEventListener("open", () => { delay = 1000; });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) return; // not logged in: do not retry
    setTimeout(() => connectNotifications(Math.min(delay * 2, 30000)), delay);
  });
}
connectNotifications();
