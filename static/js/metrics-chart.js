// Metrics trend on a model's page: the data comes from a json_script tag, never inline JS.
// One metric at a time, on its own axis (metrics of different scales on one axis hide
// each other); the metric picker (radio buttons named "metric") redraws the chart and
// keeps the choice in the address, so a link shows the same metric.
(function () {
  function seriesNamed(trend, name) {
    for (var i = 0; i < trend.series.length; i++) {
      if (trend.series[i].name === name) { return trend.series[i]; }
    }
    return trend.series[0];
  }

  function draw(el, trend, name) {
    var s = seriesNamed(trend, name);
    if (!s) { return; }
    var format = s.percent ? ".1%" : ".4~g";
    var traces = [{
      x: trend.versions, y: s.values, name: s.label, type: "scatter", mode: "lines+markers",
      connectgaps: true, text: trend.states,
      hovertemplate: "%{x} (%{text})<br>" + s.label + ": %{y:" + format + "}<extra></extra>"
    }];
    if (s.baseline) {
      traces.push({
        x: trend.versions, y: s.baseline, name: "naive forecast, same held-out data",
        type: "scatter", mode: "lines", connectgaps: true, line: { dash: "dash", width: 1.5 },
        hovertemplate: "%{x}<br>naive forecast: %{y:" + format + "}<extra></extra>"
      });
    }
    var layout = {
      margin: { t: 20, r: 30, b: 50, l: 70 }, height: 320,
      xaxis: { type: "category", title: { text: "version" } },
      yaxis: { title: { text: s.label }, tickformat: s.percent ? ".0%" : "~g", rangemode: "tozero" },
      showlegend: Boolean(s.baseline), legend: { orientation: "h", y: -0.3 }
    };
    window.Plotly.react(el, traces, layout, { displayModeBar: false, responsive: true });
  }

  function setUp(el) {
    var source = document.getElementById(el.dataset.chartSource);
    if (!source || !window.Plotly) { return; }
    var trend = JSON.parse(source.textContent);
    draw(el, trend, trend.selected);
    var picker = document.querySelector('[data-chart-picker="' + el.id + '"]');
    if (!picker) { return; }
    // With JavaScript the choice applies at once: the form's button is for pages without.
    picker.querySelectorAll("[data-picker-submit]").forEach(function (b) { b.hidden = true; });
    picker.addEventListener("change", function (event) {
      if (event.target.name !== "metric") { return; }
      draw(el, trend, event.target.value);
      var address = new URL(window.location.href);
      address.searchParams.set("metric", event.target.value);
      window.history.replaceState(null, "", address);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart-source]").forEach(setUp);
  });
})();
