// The fpai-node dashboard: reads this node's JSON endpoints every REFRESH_MS and redraws.
// Everything a peer chose (node ids, model names, summaries) goes in through textContent only.
"use strict";

const REFRESH_MS = 2000; // a dead peer shows within gossip's own few seconds, not a reload
const CHAIN_EVERY = 5; // the treasury and rewards ask the chain: every 10 s is enough
const STABLECOIN_DECIMALS = 6; // the testnet's and the contracts' stablecoin (chain/deploy.py)
let rounds = 0;
const KEY = "fpai-api-key"; // sessionStorage only: gone when the tab closes
let waitingForKey = null; // the approval to retry once the operator typed a key

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const cell of cells) {
    if (cell instanceof Node) { const td = el("td"); td.append(cell); tr.append(td); }
    else tr.append(el("td", cell));
  }
  return tr;
}

function shortId(id) {
  const span = el("span", id.length > 16 ? `${id.slice(0, 14)}…` : id, { title: id, class: "id" });
  return span;
}

function coin(units) {
  return `${(Number(units) / 10 ** STABLECOIN_DECIMALS).toLocaleString(undefined, { maximumFractionDigits: 2 })} USD`;
}

function fill(id, rows) { document.getElementById(id).replaceChildren(...rows); }
function text(id, value) { document.getElementById(id).textContent = value; }

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function duration(seconds) {
  const s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
  const m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function peerLoad(p, router) {
  const parts = [typeof p.load_permille === "number" ? `load ${(p.load_permille / 10).toFixed(0)}%` : "load ?"];
  if (p.queue_depth) parts.push(`queue ${p.queue_depth}`);
  const inflight = (router.inflight || {})[p.node_id];
  if (inflight) parts.push(`${inflight} in flight`);
  const latency = (router.latency_ms || {})[p.node_id];
  if (typeof latency === "number") parts.push(`${latency.toFixed(0)} ms`);
  return parts.join(" · ");
}

function drawNode(status) {
  text("node-id", status.node_id);
  text("node-meta", `version ${status.version} · protocol ${status.protocol_version} · ` +
    `preset ${status.preset} · up ${duration(status.uptime_s)}`);
  const router = status.router || {};
  const local = status.models.map((m) => `${m.id}: ${m.running} running, ${m.waiting} waiting`).join("; ");
  const own = {
    node_id: status.node_id, state: "this node", address: status.peer_channel.address, models: status.models,
  };
  const nodes = [own, ...status.peers].map((p) => {
    const models = (p.models || []).map((m) => m.id).join(", ");
    const tr = row([shortId(p.node_id), p.state, p.address, models, p === own ? local || "idle" : peerLoad(p, router)],
      { "data-testid": "node-row", "data-node-id": p.node_id, "data-state": p === own ? "alive" : p.state });
    tr.children[1].className = "state nowrap";
    tr.children[2].className = "nowrap";
    return tr;
  });
  fill("nodes", nodes);
  const served = new Map();
  for (const m of status.models) {
    served.set(m.id, [`${status.node_id.slice(0, 14)}… (here, ${m.running} running, ${m.waiting} waiting)`]);
  }
  for (const p of status.peers) {
    if (p.state !== "alive" && p.state !== "suspect") continue;
    for (const m of p.models || []) {
      if (!served.has(m.id)) served.set(m.id, []);
      served.get(m.id).push(`${p.node_id.slice(0, 14)}… (${peerLoad(p, router)})`);
    }
  }
  fill("models", [...served].map(([model, where]) => row([model, where.join(", ")])));
  const reg = status.registry;
  text("registry", `leader ${reg.leader || "none"}, term ${reg.term}, commit ${reg.commit_index}, ` +
    `${reg.configuration.length} voters (target ${reg.voters_target}), phase ${reg.phase}`);
  fill("members", reg.members.map((m) =>
    row([shortId(m.node_id), m.node_id === reg.leader ? `${m.role} (leader)` : m.role],
      { "data-testid": "member-row" })));
  const mem = status.memory;
  text("memory", mem ? `${mem.holders.length} holders, replication ${mem.replicas}, ` +
    `${Object.keys(mem.shards).length} shards with data here; repair rounds ${mem.repair.rounds || 0}`
    : "memory off");
  const shards = mem ? Object.entries(mem.shards).sort((a, b) => Number(a[0]) - Number(b[0])) : [];
  document.getElementById("shards-table").hidden = shards.length === 0;
  fill("shards", shards.map(([n, sh]) => row([n, sh.records, sh.operations], { "data-testid": "shard-row" })));
  const sup = status.supervisor;
  if (sup) fill("checks", sup.checks.map((c) => el("li", `${c.name}: ${c.detail}`, { class: c.ok ? "ok" : "bad" })));
  if (status.treasury.chain !== "ready") {
    text("treasury", status.treasury.chain === "none" ? "no chain configured" : `chain ${status.treasury.chain}`);
    fill("proposals", []);
  }
  text("rewards", `epoch ${status.rewards.epoch}, ${status.rewards.pairs} pairs of receipts this node holds`);
}

function drawTreasury(t) {
  if (t === null) return;
  const vault = t.treasury.vault ? `, in the vault ${coin(t.treasury.vault_value)}` : "";
  text("treasury", `treasury ${coin(t.treasury.stablecoin)}${vault}; growth ${coin(t.growth.stablecoin)}; ` +
    `split ${t.split.treasury_bps / 100}% / ${t.split.growth_bps / 100}%; ` +
    `${Object.values(t.operators).filter(Boolean).length} operators bound; block ${t.block}`);
  fill("proposals", t.proposals.slice(0, 10).map((p) =>
    row([p.text, p.state, `${p.tally ? Object.entries(p.tally).map(([k, v]) => `${k} ${v}`).join(", ") : ""}`],
      { "data-testid": "proposal-row" })));
}

function drawRewards(r) {
  if (r === null) return;
  const final = r.epochs.filter((e) => e.state === "final");
  const earned = final.reduce((sum, e) => sum + Number(e.earned || 0), 0);
  text("rewards", `epoch ${r.current_epoch}; ${r.epochs.length} epochs with work, ${final.length} final; ` +
    `earned ${earned} in final epochs; ${r.reports.against_this_node.length} fraud reports against this node`);
}

function drawSovereignty(audit) {
  const section = document.getElementById("sovereignty");
  section.hidden = audit === null;
  if (audit === null) return;
  text("score", `${audit.score} / ${audit.max}`);
  const parts = [];
  for (const c of audit.components) {
    parts.push(el("div", `${c.title}: ${c.points} / ${c.max}`));
    const bar = el("div", null, { class: "bar" });
    const fillBar = el("div");
    fillBar.style.width = `${Math.round((100 * c.points) / c.max)}%`;
    bar.append(fillBar);
    parts.push(bar);
    for (const line of c.evidence) parts.push(el("p", line, { class: "evidence" }));
  }
  fill("components", parts);
  fill("weaknesses", audit.single_points_of_failure.map((w) =>
    el("li", w.detail, { "data-testid": "weakness", "data-kind": w.kind })));
}

function drawActions(data) {
  if (data === null) return;
  text("autonomy", `(autonomy ${data.autonomy})`);
  fill("actions", data.actions.map((a) => {
    const buttons = el("span");
    if (a.state === "pending") {
      for (const verb of ["approve", "reject"]) {
        const b = el("button", verb === "approve" ? "Approve" : "Reject", { "data-testid": verb });
        b.addEventListener("click", () => decide(a.id, verb));
        buttons.append(b);
      }
    }
    const what = a.outcome && a.state !== "pending" ? `${a.summary} — ${a.outcome}` : a.summary;
    const tr = row([a.id, a.state, what, buttons],
      { "data-testid": "action-row", "data-action-id": a.id, "data-state": a.state });
    for (const i of [0, 1, 3]) tr.children[i].className = "nowrap";
    return tr;
  }));
}

async function decide(id, verb) {
  const key = sessionStorage.getItem(KEY);
  const headers = { "Content-Type": "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(`/fpai/v1/actions/${encodeURIComponent(id)}/${verb}`,
    { method: "POST", headers, body: "{}" });
  if (response.status === 401) {
    waitingForKey = () => decide(id, verb);
    document.getElementById("key-form").hidden = false;
    document.getElementById("key").focus();
    text("action-error", key ? "that API key was refused" : "this node needs its API key");
    return;
  }
  let body = {};
  try { body = await response.json(); } catch (e) { body = {}; }
  text("action-error", response.ok ? "" : (body.error && body.error.message) || `HTTP ${response.status}`);
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key").value);
    document.getElementById("key").value = "";
    document.getElementById("key-form").hidden = true;
    const retry = waitingForKey;
    waitingForKey = null;
    if (retry) retry();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [status, audit, actions] = await Promise.all(
      [getJson("/fpai/v1/status"), getJson("/fpai/v1/sovereignty"), getJson("/fpai/v1/actions")]);
    drawNode(status);
    drawSovereignty(audit);
    drawActions(actions);
    if (rounds++ % CHAIN_EVERY === 0) {
      if (status.treasury.chain === "ready") drawTreasury(await getJson("/fpai/v1/treasury"));
      drawRewards(await getJson("/fpai/v1/rewards"));
    }
    const shown = document.getElementById("freshness");
    shown.className = "muted";
    shown.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    const shown = document.getElementById("freshness");
    shown.className = "stale";
    shown.textContent = `node not answering (${error.message}); retrying`;
  } finally {
    refreshing = false;
  }
}
