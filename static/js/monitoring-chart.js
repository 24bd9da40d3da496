// Monitoring panels: series from a json_script tag, thresholds drawn as dashed lines.
(function () {
  var COLOURS = { warning: "#d97706", critical: "#dc2626" };
  function draw(el) {
    var source = document.getElementById(el.dataset.monitoringChart);
    if (!source || !window.Plotly) { return; }
    var chart = JSON.parse(source.textContent);
    var traces = chart.traces.map(function (t) {
      // The canary's series dotted beside the stable one's solid line.
      return {
        x: t.x, y: t.y, name: t.name, type: "scatter", mode: "lines",
        line: { dash: t.track === "canary" ? "dot" : "solid" }
      };
    });
    var shapes = chart.thresholds.map(function (th) {
      return {
        type: "line", xref: "paper", x0: 0, x1: 1, y0: th.value, y1: th.value,
        line: { color: COLOURS[th.level] || "#666", dash: "dash", width: 1 }
      };
    });
    var layout = {
      margin: { t: 10, r: 20, b: 40, l: 60 }, height: 260, shapes: shapes,
      xaxis: { type: "date" }, legend: { orientation: "h", y: -0.3 }
    };
    window.Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-monitoring-chart]").forEach(draw);
  });
})();
