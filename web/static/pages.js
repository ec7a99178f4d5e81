// Follows a running task's log: server-sent events append its new lines; when the
// task is done (or its next try starts) the page reloads to show where it is.
(function () {
  const log = document.getElementById("log");
  const url = log && log.dataset.follow;
  if (!url) return;
  const source = new EventSource(url);
  source.addEventListener("lines", (e) => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    for (const l of JSON.parse(e.data)) {
      const span = document.createElement("span");
      span.className = l.stream;
      span.textContent = `${l.at} ${l.line}`;
      log.append(span, "\n");
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    location.reload();
  });
})();

// A DAG's run durations, one bar per finished run coloured by its state; a click
// opens the run.
(function () {
  const canvas = document.getElementById("durations");
  if (!canvas || !window.Chart) return;
  const points = JSON.parse(canvas.dataset.points);
  const colour = { success: "#16a34a", failed: "#dc2626" };
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: points.map((p) => p.at),
      datasets: [{
        label: "seconds",
        data: points.map((p) => p.seconds),
        backgroundColor: points.map((p) => colour[p.state] || "#9ca3af"),
      }],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false },
        tooltip: { callbacks: { title: (items) => `run ${points[items[0].dataIndex].run} · ${items[0].label}` } } },
      scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { title: { display: true, text: "seconds" }, beginAtZero: true } },
      onClick: (_, elements) => { if (elements.length) location.href = `/runs/${points[elements[0].index].run}`; },
    },
  });
})();

// A task group's row in the grid opens into (and closes over) its tasks' rows.
(function () {
  for (const row of document.querySelectorAll("#grid tr.group-row")) {
    row.querySelector("button.fold").addEventListener("click", () => {
      const members = document.querySelectorAll(`#grid tr.member[data-group="${row.dataset.group}"]`);
      const open = [...members].some((m) => m.hidden);
      for (const m of members) m.hidden = !open;
      row.classList.toggle("open", open);
    });
  }
})();
