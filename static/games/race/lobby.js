// Contour-race lobby: presence, the queue, and the jump into a room once matched.

const root = document.getElementById("race-lobby");
const form = root?.querySelector("[data-role=pick]");
const status = root?.querySelector("[data-role=status]");
const cancel = root?.querySelector("[data-action=cancel]");
let socket = null;
let queuedFor = null;
let ping = null;
let delay = 1000;

function chosen() {
  return form.querySelector("input[name=dataset]:checked")?.value;
}

function say(text) {
  status.textContent = text;
}

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function goToRoom(token) {
  clearInterval(ping);
  location.assign(root.dataset.roomUrl.replace("00000000-0000-0000-0000-000000000000", token));
}

function showPresence(data) {
  const list = root.querySelector("[data-role=waiting]");
  list.replaceChildren(
    ...data.waiting.map((w) => {
      const li = document.createElement("li");
      li.textContent = `${w.name} — waiting to race: ${w.race.toLowerCase()}`;
      return li;
    }),
  );
  if (!data.waiting.length) {
    const li = document.createElement("li");
    li.textContent = "Nobody is waiting right now.";
    list.append(li);
  }
  const n = data.rooms_open;
  root.querySelector("[data-role=rooms]").textContent =
    `${n} room${n === 1 ? "" : "s"} racing`;
}

function onMessage(event) {
  const data = JSON.parse(event.data);
  if (data.type === "lobby") showPresence(data);
  else if (data.type === "queued") {
    say(`Waiting for players of similar skill (${data.waiting} waiting). If nobody comes soon and earlier races exist, you race their ghosts.`);
  } else if (data.type === "matched") {
    say(data.solo ? "Starting a race against ghosts…" : "Matched! Joining the room…");
    goToRoom(data.room);
  } else if (data.type === "cancelled") say("You left the queue.");
  else if (data.type === "error") say(data.message);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/race/lobby/`);
  socket.addEventListener("open", () => {
    delay = 1000;
    say(queuedFor ? "Back in the queue…" : "Pick a race, then find players or race ghosts.");
    root.dataset.ready = "true";
    if (queuedFor) send({ type: "queue", dataset: queuedFor });
  });
  socket.addEventListener("message", onMessage);
  socket.addEventListener("close", (event) => {
    root.dataset.ready = "false";
    if (event.code === 4401 || event.code === 4403) {
      say("Log in as a volunteer to race.");
      return;
    }
    say("Connection lost; reconnecting…");
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  });
}

if (form) {
  form.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (!action) return;
    if (action === "queue") {
      queuedFor = chosen();
      send({ type: "queue", dataset: queuedFor });
      cancel.hidden = false;
      // The server matches on every message: a periodic ping widens the skill window with time
      // and hands ghosts to a player who waited long enough.
      clearInterval(ping);
      ping = setInterval(() => send({ type: "ping", dataset: queuedFor }), 4000);
    } else if (action === "solo") {
      send({ type: "solo", dataset: chosen() });
    } else if (action === "cancel") {
      queuedFor = null;
      clearInterval(ping);
      send({ type: "cancel" });
      cancel.hidden = true;
    }
  });
  connect();
}
