/* salesmesh forms: show/hide fields and toggle "required" without a reload, from the same JsonLogic
 * rules the server evaluates (data-visible-if / data-required-if on [data-field] and [data-section]).
 * Semantics match salesmesh/forms/compile.py: a hidden field's value counts as absent, a hidden section
 * hides its fields, and all rules are re-evaluated until nothing changes (at most n + 1 rounds).
 * Hidden inputs are disabled so they are not submitted. A rule using an operator outside the small set
 * below (e.g. a domain operator such as days_since) keeps the state the server rendered. */
(function () {
  "use strict";
  if (window.salesmeshForms) return;

  function Unsupported(op) { this.op = op; }
  function truthy(v) { return Array.isArray(v) ? v.length > 0 : !!v; }

  function lookup(data, path, fallback) {
    if (fallback === undefined) fallback = null;
    if (path === null || path === undefined || path === "") return data;
    var parts = String(path).split("."), cur = data;
    for (var i = 0; i < parts.length; i++) {
      if (cur === null || cur === undefined || typeof cur !== "object") return fallback;
      if (!Object.prototype.hasOwnProperty.call(cur, parts[i])) return fallback;
      cur = cur[parts[i]];
    }
    return cur === undefined ? fallback : cur;
  }

  function evaluate(rule, data) {
    if (Array.isArray(rule)) return rule.map(function (r) { return evaluate(r, data); });
    if (rule === null || typeof rule !== "object") return rule;
    var ops = Object.keys(rule);
    if (ops.length !== 1) return rule;
    var op = ops[0], args = Array.isArray(rule[op]) ? rule[op] : [rule[op]], i, v;
    function arg(n) { return evaluate(args[n], data); }
    switch (op) {
      case "var": return lookup(data, arg(0), args.length > 1 ? arg(1) : null);
      case "missing":
        var given = args.map(function (a) { return evaluate(a, data); });
        var names = Array.isArray(given[0]) ? given[0] : given;
        return names.filter(function (n) { var x = lookup(data, n, null); return x === null || x === ""; });
      case "and":
        for (i = 0; i < args.length; i++) { v = arg(i); if (!truthy(v)) return v; }
        return v;
      case "or":
        for (i = 0; i < args.length; i++) { v = arg(i); if (truthy(v)) return v; }
        return v;
      case "if":
      case "?:":
        for (i = 0; i + 1 < args.length; i += 2) { if (truthy(arg(i))) return arg(i + 1); }
        return args.length % 2 ? arg(args.length - 1) : null;
      case "!": return !truthy(arg(0));
      case "!!": return truthy(arg(0));
      case "==": return arg(0) == arg(1); // eslint-disable-line eqeqeq -- JsonLogic's loose equality
      case "!=": return arg(0) != arg(1); // eslint-disable-line eqeqeq
      case "===": return arg(0) === arg(1);
      case "!==": return arg(0) !== arg(1);
      case "<": return args.length === 3 ? arg(0) < arg(1) && arg(1) < arg(2) : arg(0) < arg(1);
      case "<=": return args.length === 3 ? arg(0) <= arg(1) && arg(1) <= arg(2) : arg(0) <= arg(1);
      case ">": return arg(0) > arg(1);
      case ">=": return arg(0) >= arg(1);
      case "in":
        var hay = arg(1), needle = arg(0);
        if (Array.isArray(hay) || typeof hay === "string") return hay.indexOf(needle) !== -1;
        return false;
      default: throw new Unsupported(op);
    }
  }

  function inputs(wrapper) {
    return Array.prototype.slice.call(wrapper.querySelectorAll("input, select, textarea"));
  }

  function valueOf(wrapper) {
    var type = wrapper.getAttribute("data-type"), key = wrapper.getAttribute("data-field");
    var named = inputs(wrapper).filter(function (el) { return el.name === key; });
    if (type === "multi_select") {
      var chosen = named.filter(function (el) { return el.checked; }).map(function (el) { return el.value; });
      return chosen.length ? chosen : null;
    }
    if (type === "boolean") return named.length ? named[0].checked : null;
    if (type === "file") {
      var count = wrapper.querySelectorAll(".attachments li").length;
      named.forEach(function (el) { count += el.files ? el.files.length : 0; });
      return count ? new Array(count).fill({}) : null;
    }
    if (!named.length) return null;
    var text = String(named[0].value || "").trim();
    if (text === "") return null;
    if (type === "number" || type === "reference") { var n = Number(text); return isNaN(n) ? text : n; }
    if (type === "money") return text.replace(/,/g, "");
    if (type === "email") return text.toLowerCase();
    return text;
  }

  function rule(el, name) {
    var text = el.getAttribute(name);
    if (!text) return undefined;
    try { return JSON.parse(text); } catch (e) { return undefined; }
  }

  function test(node, view) {
    try { return truthy(evaluate(node.rule, view)); } catch (e) {
      if (e instanceof Unsupported) return !node.el.hidden;
      throw e;
    }
  }

  function update(form) {
    var fields = Array.prototype.slice.call(form.querySelectorAll("[data-field]"));
    var data = {}, nodes = [], hidden = {}, sections = {};
    fields.forEach(function (w) {
      if (w.getAttribute("data-type") !== "heading") data[w.getAttribute("data-field")] = valueOf(w);
    });
    form.querySelectorAll("[data-section][data-visible-if]").forEach(function (s) {
      var keys = Array.prototype.map.call(s.querySelectorAll("[data-field]"), function (w) { return w.getAttribute("data-field"); });
      nodes.push({ el: s, rule: rule(s, "data-visible-if"), section: s.getAttribute("data-section"), keys: keys });
    });
    fields.forEach(function (w) {
      if (w.hasAttribute("data-visible-if")) nodes.push({ el: w, rule: rule(w, "data-visible-if"), keys: [w.getAttribute("data-field")] });
    });
    var view = Object.assign({}, data);
    for (var round = 0; round <= nodes.length; round++) {
      var nextHidden = {}, nextSections = {};
      nodes.forEach(function (node) {
        if (node.rule === undefined || test(node, view)) return;
        if (node.section) nextSections[node.section] = true;
        node.keys.forEach(function (k) { nextHidden[k] = true; });
      });
      var same = JSON.stringify(Object.keys(nextHidden).sort()) === JSON.stringify(Object.keys(hidden).sort()) &&
        JSON.stringify(Object.keys(nextSections).sort()) === JSON.stringify(Object.keys(sections).sort());
      if (same) break;
      hidden = nextHidden; sections = nextSections; view = {};
      Object.keys(data).forEach(function (k) { if (!hidden[k]) view[k] = data[k]; });
    }
    nodes.forEach(function (node) {
      if (!node.section) return;
      node.el.hidden = !!sections[node.section];
      node.el.disabled = !!sections[node.section];
    });
    fields.forEach(function (w) {
      var key = w.getAttribute("data-field"), off = !!hidden[key];
      w.hidden = off;
      inputs(w).forEach(function (el) { el.disabled = off; });
      if (w.getAttribute("data-type") === "heading") return;
      var requiredIf = rule(w, "data-required-if");
      var required = !off && (w.hasAttribute("data-required") ||
        (requiredIf !== undefined && test({ el: w, rule: requiredIf }, view)));
      var mark = w.querySelector(".req");
      if (mark) mark.hidden = !required;
      var attached = w.querySelectorAll(".attachments li").length > 0;
      inputs(w).forEach(function (el) {
        if (el.type === "checkbox") return;
        var needed = required && !(el.type === "file" && attached);
        el.required = needed;
        if (needed) el.setAttribute("aria-required", "true"); else el.removeAttribute("aria-required");
      });
    });
  }

  function attach(form) {
    if (form.getAttribute("data-forms-ready")) return;
    form.setAttribute("data-forms-ready", "1");
    var handler = function () { update(form); };
    form.addEventListener("input", handler);
    form.addEventListener("change", handler);
    update(form);
  }

  function refresh(root) {
    (root || document).querySelectorAll("[data-form]").forEach(attach);
  }

  window.salesmeshForms = { evaluate: evaluate, update: update, refresh: refresh };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { refresh(); });
  else refresh();
  document.addEventListener("htmx:afterSwap", function (e) { refresh(e.target); });
})();
