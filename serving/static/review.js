// Manager review page: reads and acts on warnings through the same JSON API the HR systems use, with the
// user's own key, so the page can never show more than the API lets that key see. All text goes into the DOM
// as text (never as HTML): warning texts come from the outside world.
const GRADE_ZH = { red: "红色预警 (I级)", orange: "橙色预警 (II级)", yellow: "黄色预警 (III级)", blue: "蓝色预警 (IV级)" };
const STATUS_ZH = { open: "待确认", acknowledged: "已确认", assigned: "已指派", resolved: "已关闭" };
const PENDING = ["open", "acknowledged", "assigned"];
const KEY = "lossguard-key";
const $ = (sel, root = document) => root.querySelector(sel);
let current = null; // the warning shown in the detail panel

function apiKey() { return sessionStorage.getItem(KEY) || ""; }

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", "X-API-Key": apiKey() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `请求失败 (HTTP ${response.status})`);
  return data;
}

function say(text, isError = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function fillList(list, items) { list.replaceChildren(...items.map((text) => el("li", text))); }

function countdown(warning) {
  if (warning.status === "resolved") return { text: "", overdue: false };
  const ms = new Date(warning.deadline) - new Date();
  const minutes = Math.round(Math.abs(ms) / 60000);
  const span = minutes >= 60 ? `${Math.floor(minutes / 60)} 小时 ${minutes % 60} 分` : `${minutes} 分钟`;
  return ms >= 0 ? { text: `剩余 ${span}`, overdue: false } : { text: `已超时 ${span}`, overdue: true };
}

function showCountdown(node, warning) {
  const due = countdown(warning);
  node.textContent = due.text;
  node.classList.toggle("overdue", due.overdue);
  node.dataset.deadline = warning.deadline;
  node.dataset.status = warning.status;
}

function ownerLines(owners) {
  const lines = [];
  const line = (kind, p) => `${kind}: ${p.label}（${p.unit_name}）${p.why ? ` — ${p.why}` : ""}`;
  for (const p of owners.functional || []) lines.push(line("职能负责", p));
  for (const p of owners.co_owners || []) lines.push(line("协同负责", p));
  for (const p of owners.direct || []) lines.push(line("直接责任", p));
  for (const p of owners.management || []) lines.push(line("管理责任", p));
  if (owners.executive) lines.push(line("分管领导", owners.executive));
  for (const note of owners.notes || []) lines.push(`说明: ${note}`);
  return lines.length ? lines : ["未能确定责任人"];
}

function actionLines(w) {
  const items = w.action_items || w.actions.map((text) => ({ text }));
  return items.map((a) => {
    const who = a.owner_label ? `负责: ${a.owner_label}` : "";
    const due = a.due_at ? `截止 ${new Date(a.due_at).toLocaleString("zh-CN")}` : "";
    const tail = [who, due].filter(Boolean).join("，");
    return tail ? `${a.text}（${tail}）` : a.text;
  });
}

function meta(w) {
  return [w.channel_zh, w.department_name || w.department_id || "未关联部门", `合并事件 ${w.events_count} 条`,
    w.assignee ? `指派给 ${w.assignee}` : ""].filter(Boolean).join(" · ");
}

function renderQueue(warnings) {
  const template = $("#warning-template");
  $("#queue").replaceChildren(...warnings.map((w) => {
    const item = template.content.firstElementChild.cloneNode(true);
    item.classList.add(w.grade);
    item.classList.toggle("selected", current !== null && current.id === w.id);
    item.dataset.id = w.id;
    $(".grade", item).textContent = GRADE_ZH[w.grade] || w.grade;
    $(".loss", item).textContent = `${w.loss_type_zh}损失`;
    $(".status", item).textContent = STATUS_ZH[w.status] || w.status;
    showCountdown($(".countdown", item), w);
    $(".summary", item).textContent = w.text.length > 80 ? `${w.text.slice(0, 80)}…` : w.text;
    $(".why", item).textContent = w.reasons.length ? w.reasons[0] + (w.reasons.length > 1 ? ` 等 ${w.reasons.length} 条` : "") : "";
    const lead = (w.owners.management || [])[0] || (w.owners.functional || [])[0];
    $(".meta", item).textContent = `#${w.id} · ${meta(w)}${lead ? ` · 责任人 ${lead.label}` : ""}`;
    item.onclick = () => openWarning(w.id);
    item.onkeydown = (event) => { if (event.key === "Enter") openWarning(w.id); };
    return item;
  }));
  if (!warnings.length) say("当前筛选条件下没有预警");
}

function renderDetail(w) {
  current = w;
  const box = $("#detail");
  box.hidden = false;
  $("#detail-empty").hidden = true;
  box.className = w.grade;
  $(".grade", box).textContent = w.label || GRADE_ZH[w.grade];
  $(".status", box).textContent = STATUS_ZH[w.status] || w.status;
  showCountdown($(".countdown", box), w);
  $(".meta", box).textContent = `#${w.id} · ${meta(w)} · 处理时限 ${new Date(w.deadline).toLocaleString("zh-CN")}`;
  $(".text", box).textContent = w.text;
  fillList($(".reasons", box), w.reasons);
  fillList($(".owners", box), ownerLines(w.owners));
  fillList($(".actions", box), w.actions.length ? actionLines(w) : ["无"]);
  fillList($("#audit"), (w.audit || []).map((e) =>
    `${new Date(e.at).toLocaleString("zh-CN")} ${e.actor} ${e.action_zh}` +
    (e.before_status && e.after_status !== e.before_status ? `（${STATUS_ZH[e.before_status]} → ${STATUS_ZH[e.after_status]}）` :
      e.after_status && !e.before_status ? `（${STATUS_ZH[e.after_status]}）` : "")));
  $("#ack").disabled = w.status !== "open";
  $("#assign").disabled = w.status === "resolved";
  $("#resolve").disabled = w.status === "open" || w.status === "resolved";
}

async function openWarning(id) {
  try { renderDetail(await call("GET", `/warnings/${id}`)); await load(); } catch (e) { say(e.message, true); }
}

async function act(path, body, done) {
  if (!current) return;
  try {
    renderDetail(await call("POST", `/warnings/${current.id}/${path}`, body));
    say(done);
    await load();
  } catch (e) { say(e.message, true); }
}

async function load() {
  const params = new URLSearchParams();
  if ($("#filter-grade").value) params.append("grade", $("#filter-grade").value);
  const status = $("#filter-status").value;
  for (const s of status === "pending" ? PENDING : status ? [status] : []) params.append("status", s);
  const data = await call("GET", `/warnings?${params}`);
  renderQueue(data.warnings);
}

function pct(value) { return `${(value * 100).toFixed(0)}%`; }

async function loadTeam(unitId) {
  const data = await call("GET", `/teams/${encodeURIComponent(unitId)}/risk`);
  const box = $("#team");
  const head = el("p", `${data.unit_name}（${data.unit_id}）: ${data.headcount} 人，预计 ${data.horizon_days} 天内离职 ` +
    `${data.expected_leavers.toFixed(1)} 人，高风险占比 ${pct(data.high_share)}，高风险关键员工 ${data.high_risk_key_employees} 人`);
  const drivers = el("p", `主要因素: ${data.top_drivers.join("；") || "无"}`);
  const table = el("table");
  const header = el("tr");
  for (const title of ["员工", "岗位", "离职倾向", "等级", "薪酬带宽比", "绩效", "主要因素"]) header.append(el("th", title));
  table.append(el("thead"), el("tbody"));
  table.tHead.append(header);
  for (const e of data.employees) {
    const row = el("tr", undefined, `band-${e.band}`);
    for (const value of [e.employee_id + (e.is_key ? " ★" : ""), e.role, pct(e.propensity), e.band_zh,
      String(e.pay_vs_band), String(e.performance_rating), e.drivers.join("；")]) row.append(el("td", value));
    table.tBodies[0].append(row);
  }
  box.replaceChildren(head, drivers, table);
}

async function login() {
  const me = await call("GET", "/me");
  $("#whoami").textContent = `${me.name}（${me.role}${me.unit_name ? " · " + me.unit_name : ""}）`;
  $("main").hidden = false;
  $("#logout").hidden = false;
  if (me.unit_id && !$("#team-id").value) $("#team-id").value = me.unit_id;
  say("");
  await load();
  document.dispatchEvent(new CustomEvent("lossguard:login", { detail: me })); // the dashboard (dashboard.js)
}

$("#login").onsubmit = async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#api-key").value.trim());
  $("#api-key").value = "";
  try { await login(); } catch (e) { sessionStorage.removeItem(KEY); say(e.message, true); }
};
$("#logout").onclick = () => { sessionStorage.removeItem(KEY); location.reload(); };
$("#refresh").onclick = () => load().catch((e) => say(e.message, true));
$("#filter-grade").onchange = $("#refresh").onclick;
$("#filter-status").onchange = $("#refresh").onclick;
$("#ack").onclick = () => act("ack", {}, "已确认，处理时限内请指派负责人");
$("#assign").onclick = () => act("assign", { assignee: $("#assignee").value.trim() }, "已指派");
$("#resolve").onclick = () => act("resolve", { outcome: $("#outcome").value, notes: $("#notes").value }, "已关闭");
$("#team-form").onsubmit = (event) => {
  event.preventDefault();
  loadTeam($("#team-id").value.trim()).catch((e) => say(e.message, true));
};
// Deadlines keep counting down without a reload.
setInterval(() => {
  for (const node of document.querySelectorAll(".countdown[data-deadline]")) {
    showCountdown(node, { deadline: node.dataset.deadline, status: node.dataset.status });
  }
}, 30000);
if (apiKey()) login().catch((e) => say(e.message, true));
