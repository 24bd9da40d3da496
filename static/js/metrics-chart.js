// Metrics trend on a model's page: the data comes from a json_script tag, never inline JS.
(function () {
  function draw(el) {
    var source = document.getElementById(el.dataset.chartSource);
    if (!source || !window.Plotly) { return; }
    var trend = JSON.parse(source.textContent);
    var traces = trend.series.map(function (s, i) {
      return {
        x: trend.versions, y: s.values, name: s.label, type: "scatter", mode: "lines+markers",
        connectgaps: true, yaxis: i === 0 ? "y" : "y2",
        text: trend.states, hovertemplate: "%{x} (%{text})<br>" + s.label + ": %{y}<extra></extra>"
      };
    });
    var layout = {
      margin: { t: 20, r: 60, b: 40, l: 60 }, height: 320,
      xaxis: { type: "category", title: { text: "version" } },
      yaxis: { title: { text: trend.series.length ? trend.series[0].label : "" } },
      yaxis2: { overlaying: "y", side: "right", showgrid: false },
      legend: { orientation: "h", y: -0.25 }
    };
    window.Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart-source]").forEach(draw);
  });
})();
