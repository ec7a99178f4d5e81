// Draws the analytics page's charts from the JSON the server put in #analytics-data.
(function () {
  const data = JSON.parse(document.getElementById("analytics-data").textContent);
  const palette = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];
  const number = new Intl.NumberFormat();
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', sans-serif";
  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }
  draw("chart-regions", {
    type: "bar",
    data: {
      labels: data.regions.map(r => r.region),
      datasets: [
        { label: "plays", data: data.regions.map(r => r.plays), backgroundColor: palette[0], yAxisID: "y" },
        { label: "listening minutes", data: data.regions.map(r => r.minutes), backgroundColor: palette[1], yAxisID: "y1" },
      ],
    },
    options: { scales: { y: { position: "left", ticks: { callback: v => number.format(v) } },
                         y1: { position: "right", grid: { drawOnChartArea: false }, ticks: { callback: v => number.format(v) } } } },
  });
  draw("chart-hours", {
    type: "line",
    data: {
      labels: data.hours.map(h => h.hour),
      datasets: [{ label: "plays per hour", data: data.hours.map(h => h.plays), borderColor: palette[0], pointRadius: 0, tension: 0.2 }],
    },
    options: { scales: { y: { ticks: { callback: v => number.format(v) } } } },
  });
  draw("chart-tracks", {
    type: "line",
    data: {
      labels: data.track_days,
      datasets: data.track_trends.map((t, i) => ({ label: t.name, data: t.plays, borderColor: palette[i % palette.length], pointRadius: 2 })),
    },
  });
  draw("chart-devices", {
    type: "doughnut",
    data: {
      labels: data.devices.map(d => d.device),
      datasets: [{ data: data.devices.map(d => d.plays), backgroundColor: palette }],
    },
    options: { plugins: { legend: { position: "right" } } },
  });
})();
