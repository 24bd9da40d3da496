// Rollout analysis charts: stable against canary per analysed step, one chart per
// measure. The data comes from a json_script tag (strict CSP: no inline JS).
(function () {
  var COLOURS = { stable: "#2563eb", canary: "#d97706" };
  function draw(el) {
    var source = document.getElementById(el.dataset.rolloutChart);
    if (!source || !window.Plotly) { return; }
    var chart = JSON.parse(source.textContent);
    var measure = chart.measures.filter(function (m) { return m.key === el.dataset.measure; })[0];
    if (!measure) { return; }
    var traces = ["stable", "canary"].map(function (track) {
      return {
        x: chart.steps, y: measure[track], name: track, type: "bar",
        marker: { color: COLOURS[track] }, text: chart.results,
        hovertemplate: "%{x} (%{text})<br>" + track + ": %{y}<extra></extra>"
      };
    });
    var layout = {
      title: { text: measure.label, font: { size: 14 } }, barmode: "group",
      margin: { t: 40, r: 20, b: 40, l: 60 }, height: 240,
      xaxis: { type: "category" }, legend: { orientation: "h", y: -0.25 }
    };
    window.Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true });
  }
  function drawAll() { document.querySelectorAll("[data-rollout-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", drawAll);
})();
