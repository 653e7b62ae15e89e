// Talks to the match-three API. Moves are queued and sent in batches; a batch that fails on the
// network is retried with the same idempotency keys, so the server stores each label once.

export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class GameApi {
  constructor({ startUrl, sessionUrl, dataset, level, onResult, onError }) {
    Object.assign(this, { startUrl, sessionUrl, dataset, level, onResult, onError });
    this.token = null;
    this.queue = [];
    this.inFlight = null;
    this.retryDelay = 500;
  }

  async start() {
    const { status, data } = await postJson(this.startUrl, { dataset: this.dataset, level: this.level });
    if (status >= 400) throw new Error(data.message || "The game could not start.");
    this.token = data.token;
    return data;
  }

  get pending() {
    return [...(this.inFlight || []), ...this.queue];
  }

  send(move) {
    this.queue.push({ key: newKey(), ...move });
    this.flush();
  }

  async flush() {
    if (this.inFlight || !this.queue.length || !this.token) return;
    this.inFlight = this.queue.splice(0, 60);
    const url = `${this.sessionUrl}${this.token}/moves/`;
    let result;
    try {
      result = await postJson(url, { moves: this.inFlight });
    } catch (error) {
      result = { status: 0, data: {} };
    }
    if (result.status === 0 || result.status >= 500) {
      // Network trouble: keep the batch (same keys) and try again; the server deduplicates.
      const batch = this.inFlight;
      this.inFlight = null;
      this.queue.unshift(...batch);
      this.retryDelay = Math.min(this.retryDelay * 2, 8000);
      this.onError?.("Connection lost, retrying…", true);
      setTimeout(() => this.flush(), this.retryDelay);
      return;
    }
    this.retryDelay = 500;
    const batch = this.inFlight;
    this.inFlight = null;
    if (result.status >= 400) {
      this.onError?.(result.data.message || "That move was refused.", false);
      await this.reload();
    } else {
      this.onResult(result.data, batch);
    }
    this.flush();
  }

  async reload() {
    const response = await fetch(`${this.sessionUrl}${this.token}/`, { credentials: "same-origin" });
    if (response.ok) this.onResult(await response.json(), []);
  }
}
