// Dashboard on the review page: how risk moves over time. Every figure comes from the JSON API with the user's
// own key (/monitoring/dashboard, /effects, /effects/report), which cuts the data to what that key may see, so a
// chart can never show more than the tables. Charts are ECharts, served from this server (static/vendor), drawn
// on canvas; tooltips render as canvas text too (richText), so the page needs no inline script or style.
// Each chart also records what it drew in data-* attributes: what the browser tests read.
/* global echarts, call, say */
const FONT = '"Noto Sans CJK SC", "WenQuanYi Zen Hei", "PingFang SC", "Microsoft YaHei", sans-serif';
const GRADES = ["red", "orange", "yellow", "blue"];
const GRADE_NAME = { red: "红色 (I级)", orange: "橙色 (II级)", yellow: "黄色 (III级)", blue: "蓝色 (IV级)" };
const GRADE_COLOR = { red: "#d62728", orange: "#ff7f0e", yellow: "#e6c700", blue: "#1f77b4" };
const BASE = { animation: false, textStyle: { fontFamily: FONT }, tooltip: { renderMode: "richText" } };
const charts = {};
let effects = [];
let me = null;

function chartFor(id) {
  if (!charts[id]) charts[id] = echarts.init(document.getElementById(id), null, { renderer: "canvas" });
  return charts[id];
}

function mark(id, data) {
  const node = document.getElementById(id);
  for (const [key, value] of Object.entries(data)) node.dataset[key] = typeof value === "string" ? value : JSON.stringify(value);
}

function shortDate(iso) { return new Date(iso).toLocaleDateString("zh-CN", { month: "numeric", day: "numeric" }); }

function drawGrades(grades) {
  const total = GRADES.reduce((sum, g) => sum + grades.series[g].reduce((a, b) => a + b, 0), 0);
  chartFor("chart-grades").setOption({
    ...BASE, tooltip: { ...BASE.tooltip, trigger: "axis" }, legend: { top: 0 },
    grid: { left: 40, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: grades.days.map((d) => d.slice(5)) }, yAxis: { type: "value", minInterval: 1 },
    series: GRADES.map((g) => ({ name: GRADE_NAME[g], type: "bar", stack: "grades", data: grades.series[g],
      itemStyle: { color: GRADE_COLOR[g] } })),
  }, true);
  mark("chart-grades", { total });
}

function drawVolume(volume) {
  const times = volume.times;
  const series = volume.departments.map((d) => ({
    name: d.name, type: "line", showSymbol: false, data: times.map((t, i) => [t, d.negative[i]]),
    markPoint: { symbol: "pin", symbolSize: 34, label: { formatter: "{c}" }, data: d.spikes.map((s) => {
      const hour = Math.max(0, times.findIndex((t) => new Date(t) > new Date(s.at)) - 1);
      return { name: `#${s.warning_id}`, coord: [times[hour], d.negative[hour]], value: s.ratio ? `${s.ratio.toFixed(1)}×` : "!",
        itemStyle: { color: GRADE_COLOR[s.grade] } };
    }) },
  }));
  chartFor("chart-volume").setOption({
    ...BASE, tooltip: { ...BASE.tooltip, trigger: "axis" }, legend: { top: 0, type: "scroll" },
    grid: { left: 40, right: 16, top: 48, bottom: 28 },
    xAxis: { type: "time" }, yAxis: { type: "value", name: "条/小时", minInterval: 1 }, series,
  }, true);
  mark("chart-volume", { departments: volume.departments.map((d) => d.id),
    spikes: volume.departments.flatMap((d) => d.spikes.map((s) => s.warning_id)) });
}

function treeData(node) {
  return { name: node.name, id: node.id, value: [Math.max(node.headcount, 0), node.risk ?? 0],
    children: (node.children || []).map(treeData) };
}

function drawHeatmap(tree) {
  const ids = [];
  const risks = [];
  const walk = (n) => { ids.push(n.id); if (n.risk !== null) risks.push(n.risk); (n.children || []).forEach(walk); };
  if (tree) walk(tree);
  const top = Math.max(0.05, ...risks);
  chartFor("chart-heatmap").setOption({
    ...BASE,
    tooltip: { ...BASE.tooltip, formatter: (p) => `${p.name}\n人数 ${p.value[0]}，平均离职倾向 ${(p.value[1] * 100).toFixed(1)}%` },
    visualMap: { type: "continuous", min: 0, max: Math.ceil(top * 20) / 20, dimension: 1, seriesIndex: 0, orient: "horizontal", left: "center",
      bottom: 0, text: ["高风险", "低风险"], inRange: { color: ["#2c7bb6", "#ffffbf", "#d7191c"] }, calculable: false },
    series: tree ? [{ type: "treemap", roam: false, nodeClick: false, breadcrumb: { show: false }, top: 8, bottom: 44,
      visualDimension: 1, label: { show: true, formatter: "{b}" }, upperLabel: { show: true, height: 20 },
      levels: [{ itemStyle: { gapWidth: 3, borderColor: "#fff" } }, { itemStyle: { gapWidth: 1, borderColor: "#eee" } }],
      data: tree.children && tree.children.length ? tree.children.map(treeData) : [treeData(tree)] }] : [],
  }, true);
  mark("chart-heatmap", { units: ids });
}

function drawEffects(items) {
  const done = items.filter((e) => e.status === "estimated" && e.metrics.negative);
  const labels = done.map((e) => `#${e.warning_id} ${e.department_name || e.department_id}`);
  const pct = (x) => Math.round(x * 1000) / 10;
  chartFor("chart-effects").setOption({
    ...BASE, grid: { left: 150, right: 24, top: 16, bottom: 36 },
    tooltip: { ...BASE.tooltip, formatter: (p) => done[p.dataIndex].summary_zh[0] },
    xAxis: { type: "value", name: "变化 %", axisLabel: { formatter: "{value}%" } },
    yAxis: { type: "category", data: labels, inverse: true },
    graphic: done.length ? [] : [{ type: "text", left: "center", top: "middle",
      style: { text: "暂无已评估的整改效果（关闭后需满 5 天数据）", fill: "#888", font: `14px ${FONT}` } }],
    series: [{ type: "boxplot", data: done.map((e) => { const m = e.metrics.negative;
      return [pct(m.low), pct(m.low), pct(m.estimate), pct(m.high), pct(m.high)]; }),
    itemStyle: { color: "#cfe3f5", borderColor: "#1f5f99" },
    markLine: { symbol: "none", lineStyle: { color: "#888", type: "dashed" }, data: [{ xAxis: 0 }] } }],
  }, true);
  mark("chart-effects", { warnings: done.map((e) => e.warning_id) });
}

function drawEffect(item) {
  const summary = document.getElementById("effect-summary");
  if (!item || !item.chart) {
    chartFor("chart-effect").clear();
    summary.replaceChildren(Object.assign(document.createElement("li"), { textContent: item ? item.summary_zh.join("；") : "暂无已关闭的预警" }));
    mark("chart-effect", { warning: item ? item.warning_id : "" });
    return;
  }
  const c = item.chart;
  const days = [...c.pre_days.map(shortDate), "整改期", ...c.post_days.map(shortDate)];
  const gap = (values) => [...values.slice(0, c.pre_days.length), null, ...values.slice(c.pre_days.length)];
  chartFor("chart-effect").setOption({
    ...BASE, tooltip: { ...BASE.tooltip, trigger: "axis" }, legend: { top: 0 },
    grid: { left: 48, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: days }, yAxis: { type: "value", name: "负面条数/天" },
    series: [
      { name: `${item.department_name || item.department_id}（整改部门）`, type: "line", data: gap(c.treated),
        connectNulls: false, itemStyle: { color: "#d62728" },
        markArea: { itemStyle: { color: "rgba(120,120,120,0.08)" }, data: [[{ name: "整改前", xAxis: days[0] },
          { xAxis: days[c.pre_days.length - 1] }], [{ name: "整改后", xAxis: days[c.pre_days.length + 1] }, { xAxis: days[days.length - 1] }]] } },
      { name: "对照部门（按整改前水平缩放）", type: "line", data: gap(c.control), lineStyle: { type: "dashed" },
        itemStyle: { color: "#1f77b4" } },
    ],
  }, true);
  summary.replaceChildren(...item.summary_zh.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
  mark("chart-effect", { warning: String(item.warning_id) });
}

function fillEffectPicker(items) {
  const pick = document.getElementById("effect-pick");
  pick.replaceChildren(...items.map((e) => Object.assign(document.createElement("option"), {
    value: String(e.warning_id), textContent: `#${e.warning_id} ${e.department_name || ""} ${e.loss_type_zh}（${e.status_zh}）` })));
  drawEffect(items[0]);
}

async function loadDashboard() {
  const days = Number(document.getElementById("trend-days").value);
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400000);
  const range = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  const [board, found] = await Promise.all([call("GET", `/monitoring/dashboard?${range}`),
    call("GET", `/effects?from=${encodeURIComponent(new Date(to.getTime() - 365 * 86400000).toISOString())}`)]);
  drawGrades(board.grades);
  drawVolume(board.volume);
  drawHeatmap(board.heatmap);
  effects = found.effects;
  drawEffects(effects);
  fillEffectPicker(effects);
  document.getElementById("trend-scope").textContent = me && me.unit_name ? `范围：${me.unit_name}及下属单位` : "范围：全公司";
  document.getElementById("trend-section").dataset.loaded = "1";
}

async function loadReport(event) {
  event.preventDefault();
  const dept = document.getElementById("report-dept").value.trim();
  const quarter = document.getElementById("report-quarter").value.trim().toUpperCase();
  try {
    const report = await call("GET", `/effects/report?department=${encodeURIComponent(dept)}&quarter=${encodeURIComponent(quarter)}`);
    document.getElementById("report").replaceChildren(...report.summary_zh.map((line) =>
      Object.assign(document.createElement("li"), { textContent: line })));
  } catch (e) { say(e.message, true); }
}

document.addEventListener("lossguard:login", (event) => {
  me = event.detail;
  const box = document.getElementById("report-box");
  box.hidden = !["manager", "admin"].includes(me.role);
  if (me.unit_id) document.getElementById("report-dept").value = me.unit_id;
  const now = new Date();
  document.getElementById("report-quarter").value = `${now.getFullYear()}Q${Math.floor(now.getMonth() / 3) + 1}`;
  loadDashboard().catch((e) => say(e.message, true));
});
document.getElementById("trend-refresh").addEventListener("click", () => loadDashboard().catch((e) => say(e.message, true)));
document.getElementById("trend-days").addEventListener("change", () => loadDashboard().catch((e) => say(e.message, true)));
document.getElementById("effect-pick").addEventListener("change", (event) =>
  drawEffect(effects.find((e) => String(e.warning_id) === event.target.value)));
document.getElementById("report-form").addEventListener("submit", loadReport);
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
