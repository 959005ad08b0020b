// Builds every figure of the page from its specification (see weightlab/report/charts.py) with BokehJS's own
// plotting API, and keeps the named data sources and cursors for the replay. Bokeh draws; this only translates.
(function () {
  "use strict";
  const specs = JSON.parse(document.getElementById("figures-data").textContent);
  const sharedRanges = {};
  const named = {};
  const TOOLS = "pan,box_zoom,wheel_zoom,reset";
  // images are Bokeh ndarrays (a typed array with a shape), made by BokehJS's own module
  const { ndarray } = Bokeh.require("core/util/ndarray");

  function image(flat, height, width) {
    return ndarray(flat, { dtype: flat instanceof Uint8Array ? "uint8" : "float32", shape: [height, width] });
  }

  function decodeArray(value) {
    const bytes = Uint8Array.from(atob(value.__array__), (c) => c.charCodeAt(0));
    const flat = value.dtype === "uint8" ? bytes : new Float32Array(bytes.buffer);
    if (value.shape.length === 1) return Array.from(flat);
    return image(flat, value.shape[0], value.shape[1]);
  }

  function decodeColumn(values) {
    if (values && values.__array__) return decodeArray(values);
    if (!Array.isArray(values)) return values;
    return values.map((v) => (v === null ? NaN : v && v.__array__ ? decodeArray(v) : Array.isArray(v) ? decodeColumn(v) : v));
  }

  function range(value) {
    if (value == null) return undefined;
    if (Array.isArray(value)) return new Bokeh.Range1d({ start: value[0], end: value[1] });
    if (value.factors) return new Bokeh.FactorRange({ factors: value.factors });
    if (!(value.shared in sharedRanges)) sharedRanges[value.shared] = new Bokeh.Range1d({ start: value.start, end: value.end });
    return sharedRanges[value.shared];
  }

  function style(values) {
    const out = {};
    for (const [key, value] of Object.entries(values)) {
      if (value && value.mapper) {
        const { kind, palette, low, high, nan_color } = value.mapper;
        if (!value.model) {
          const Mapper = { eqhist: Bokeh.EqHistColorMapper, log: Bokeh.LogColorMapper }[kind] || Bokeh.LinearColorMapper;
          value.model = new Mapper({ palette, low, high, nan_color });
        }
        out[key] = value.model;
      } else out[key] = value;
    }
    return out;
  }

  function remember(name, model) {
    if (name) (named[name] = named[name] || []).push(model);
  }

  function addLayer(plot, layer) {
    const source = new Bokeh.ColumnDataSource({ data: Object.fromEntries(Object.entries(layer.data).map(([k, v]) => [k, decodeColumn(v)])) });
    const fields = Object.fromEntries(Object.entries(layer.fields).map(([k, v]) => [k, { field: v }]));
    if (layer.glyph === "span") {
      const span = new Bokeh.Span(style(layer.style));
      plot.add_layout(span);
      return remember(layer.name, span);
    }
    if (layer.glyph === "colorbar") return plot.add_layout(new Bokeh.ColorBar(style(layer.style)), "right");
    if (layer.glyph === "whisker") return plot.add_layout(new Bokeh.Whisker({ ...fields, ...style(layer.style), source }));
    const args = { ...fields, ...style(layer.style), source };
    if (layer.legend) args.legend_label = layer.legend;
    const renderer = plot[layer.glyph](args);
    if (layer.name && args.color_mapper) remember(`${layer.name}/mapper`, args.color_mapper);
    if (layer.hover) plot.add_tools(new Bokeh.HoverTool({ tooltips: layer.hover, renderers: [renderer] }));
    remember(layer.name, source);
  }

  function build(spec) {
    const plot = Bokeh.Plotting.figure({
      title: spec.title, width: spec.width, height: spec.height, tools: TOOLS,
      x_axis_type: spec.x_axis_type || "auto", y_axis_type: spec.y_axis_type || "auto",
      x_range: range(spec.x_range), y_range: range(spec.y_range), match_aspect: Boolean(spec.match_aspect),
      x_axis_label: spec.x_label || null, y_axis_label: spec.y_label || null,
    });
    plot.toolbar.logo = null;
    plot.title.text_font_size = "13px";
    for (const layer of spec.layers) addLayer(plot, layer);
    remember(spec.title_name, plot.title);
    if (spec.plain) {
      plot.axis.visible = false;
      plot.grid.visible = false;
    }
    if (spec.grid === false) plot.grid.visible = false;
    if (spec.x_label_orientation) plot.xaxis.major_label_orientation = spec.x_label_orientation;
    if (spec.x_ticks) {
      plot.xaxis.ticker = new Bokeh.FixedTicker({ ticks: spec.x_ticks.ticks });
      plot.xaxis.major_label_overrides = new Map(Object.entries(spec.x_ticks.labels).map(([k, v]) => [Number(k), v]));
    }
    if (spec.legend && plot.legend.items.length) {
      plot.legend.location = spec.legend.location;
      plot.legend.click_policy = "hide";
      plot.legend.label_text_font_size = "11px";
      plot.legend.background_fill_alpha = 0.7;
    }
    return plot;
  }

  // one Bokeh document for every figure, so that shared ranges and colour mappers may be shared
  const elements = Array.from(document.querySelectorAll("[data-figure]"));
  const doc = new Bokeh.Document();
  for (const element of elements) doc.add_root(build(specs[element.dataset.figure]));
  const shown = Bokeh.embed.add_document_standalone(doc, document.querySelector("main"), elements);
  window.weightlab = { ready: shown.then(() => named), named, image };
})();
