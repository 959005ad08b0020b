// The replay: one timeline over the snapshots moves every figure named replay-… together.
// Glue only: Bokeh draws; this script swaps the columns of named data sources and moves cursors.
(function () {
  "use strict";
  const payload = JSON.parse(document.getElementById("replay-data").textContent);
  const root = document.getElementById("replay");
  const timeline = payload.timeline;
  const byEpoch = timeline.by === "epoch"; // variants whose steps mean different points of training
  const last = timeline.epochs.length - 1;
  const slider = root.querySelector("input[type=range]");
  const playButton = root.querySelector("[data-action=play]");
  const ownScale = root.querySelector("input[name=own-scale]");
  let current = last;
  let playing = null;

  async function inflate(text) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function decodePictures(pictures) {
    // W0 from its codes (255: a gutter), then every snapshot's change codes restored from their differences along time
    const initialCodes = await inflate(pictures.initial);
    const initial = Float32Array.from(initialCodes, (c) => (c === 255 ? NaN : ((c - 127) / 127) * pictures.initial_limit));
    const codes = await inflate(pictures.changes);
    const size = pictures.height * pictures.width;
    for (let i = size; i < codes.length; i++) codes[i] = (codes[i] + codes[i - size]) & 255;
    return { initial, codes, size, width: pictures.width, scale: pictures.change_scale, pictures };
  }

  function named(models, name) {
    return models[name] || [];
  }

  function setColumns(source, columns) {
    source.data = Object.assign({}, source.data, columns);
  }

  function fillImage(source, values, width) {
    setColumns(source, { image: [window.weightlab.image(values, values.length / width, width)] });
  }

  // Each track is one run's snapshots; the timeline shows, per track, its last snapshot at or before the point.
  function indexOf(track, point) {
    const along = byEpoch ? track.epochs : track.steps;
    let index = 0;
    while (index + 1 < along.length && along[index + 1] <= point) index++;
    return index;
  }

  function formatStep(index) {
    const epoch = timeline.epochs[index];
    if (byEpoch) return `epoch ${epoch.toFixed(2)}`;
    return `step ${timeline.steps[index].toLocaleString("en-US")} · epoch ${epoch.toFixed(epoch % 1 ? 2 : 1)}`;
  }

  function showTrack(models, track, decoded, step) {
    const t = indexOf(track, step);
    const prefix = track.prefix;
    if (decoded) {
      const { initial, codes, size, scale, pictures } = decoded;
      const change = new Float32Array(size);
      const now = new Float32Array(size);
      for (let i = 0; i < size; i++) {
        const k = (codes[t * size + i] - 127) / 127; // a square-root code: fine near zero
        change[i] = Number.isNaN(initial[i]) ? NaN : Math.sign(k) * k * k * scale;
        now[i] = initial[i] + change[i];
      }
      const own = Boolean(ownScale && ownScale.checked);
      const limit = own ? pictures.change_limits[t] : pictures.change_limit;
      for (const mapper of named(models, prefix + "replay-picture-change/mapper")) mapper.setv({ low: -limit, high: limit });
      for (const title of named(models, prefix + "replay-picture-change/title")) {
        const base = title.text.split(":")[0];
        title.text = `${base}: ±${limit.toPrecision(2)}, ${own ? "this snapshot's own scale" : "one scale for every snapshot"}`;
      }
      for (const source of named(models, prefix + "replay-picture-now")) fillImage(source, now, decoded.width);
      for (const source of named(models, prefix + "replay-picture-change")) fillImage(source, change, decoded.width);
    }
    for (const [name, histogram] of Object.entries(track.histograms)) {
      for (const source of named(models, `${prefix}replay-histogram:${name}`)) setColumns(source, { now: histogram.counts[t] });
    }
    if (track.panel) showPanel(models, prefix, track.panel, t);
    if (track.path) {
      for (const source of named(models, prefix + "replay-path-point")) setColumns(source, { x: [track.path[t][0]], y: [track.path[t][1]] });
    }
    for (const span of named(models, prefix + "replay-cursor-index")) span.location = t + 0.5;
    for (const [key, values] of [["accuracy", track.test_accuracy], ["loss", track.test_loss]]) {
      for (const element of document.querySelectorAll(`[data-replay=${key}][data-track="${prefix}"]`)) {
        const value = values ? values[t] : null;
        element.dataset.value = value === null ? "" : String(value);
        element.textContent = value === null ? "—" : key === "accuracy" ? `${(100 * value).toFixed(2)}%` : value.toFixed(4);
      }
    }
  }

  function showPanel(models, prefix, panel, t) {
    const probabilities = panel.probabilities[t];
    const classes = probabilities[0].length;
    for (const source of named(models, prefix + "replay-panel-bars")) {
      const bottom = source.data.bottom;
      const top = [], p = [], colour = [];
      probabilities.forEach((row, example) => {
        const predicted = row.indexOf(Math.max(...row));
        row.forEach((value, klass) => {
          top.push(bottom[example * classes + klass] + 5 * value);
          p.push(value);
          colour.push(klass === panel.labels[example] ? "#2a9d8f" : klass === predicted ? "#d1495b" : "#b8c0cc");
        });
      });
      setColumns(source, { top, p, colour });
    }
    for (const source of named(models, prefix + "replay-panel-frames")) {
      const wrong = [], text = [];
      probabilities.forEach((row, example) => {
        const predicted = row.indexOf(Math.max(...row));
        wrong.push(predicted === panel.labels[example] ? 0 : 1);
        text.push(`${panel.labels[example]} → ${predicted} (${Math.round(100 * row[predicted])}%)`);
      });
      setColumns(source, { wrong, text });
    }
  }

  function start(models, decoded) {
    function show(index) {
      current = Math.max(0, Math.min(last, index));
      const point = byEpoch ? timeline.epochs[current] : timeline.steps[current];
      payload.tracks.forEach((track, i) => showTrack(models, track, decoded[i], point));
      if (!byEpoch) for (const span of named(models, "replay-cursor")) span.location = point;
      slider.value = String(current);
      document.getElementById("replay-step").textContent = formatStep(current);
    }
    function pause() {
      clearInterval(playing);
      playing = null;
      playButton.textContent = "▶ play";
    }
    function play() {
      if (current === last) show(0);
      playButton.textContent = "❚❚ pause";
      playing = setInterval(() => (current === last ? pause() : show(current + 1)), 350);
    }
    const actions = {
      first: () => show(0),
      previous: () => show(current - 1),
      next: () => show(current + 1),
      last: () => show(last),
      play: () => (playing ? pause() : play()),
    };
    root.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", () => {
        if (button.dataset.action !== "play") pause();
        actions[button.dataset.action]();
      });
    });
    if (ownScale) ownScale.addEventListener("change", () => show(current));
    slider.addEventListener("input", () => {
      pause();
      show(Number(slider.value));
    });
    const keys = { ArrowLeft: "previous", ArrowRight: "next", Home: "first", End: "last" };
    document.addEventListener("keydown", (event) => {
      const target = event.target;
      if (!(event.key in keys) || (target.tagName === "INPUT" && target !== slider) || target.tagName === "TEXTAREA") return;
      event.preventDefault();
      pause();
      actions[keys[event.key]]();
    });
    show(last);
    root.classList.add("ready");
  }

  Promise.all([window.weightlab.ready, Promise.all(payload.tracks.map((t) => (t.pictures ? decodePictures(t.pictures) : null)))])
    .then(([models, decoded]) => start(models, decoded))
    .catch((error) => {
      document.getElementById("replay-step").textContent = `the replay could not start: ${error}`;
      throw error;
    });
})();
