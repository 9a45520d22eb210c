/* salesmesh record pages: one-tap date chips for the next-step date. Progressive enhancement: the chips
 * stay hidden without JavaScript and the date input works on its own. */
(function () {
  "use strict";
  function wire(group) {
    var input = document.getElementById(group.getAttribute("data-date-chips"));
    if (!input) return;
    var chips = Array.prototype.slice.call(group.querySelectorAll("[data-date]"));
    function mark() {
      chips.forEach(function (chip) {
        chip.setAttribute("aria-pressed", chip.getAttribute("data-date") === input.value ? "true" : "false");
      });
    }
    chips.forEach(function (chip) {
      chip.addEventListener("click", function () {
        input.value = chip.getAttribute("data-date");
        input.dispatchEvent(new Event("change", { bubbles: true }));
        mark();
      });
    });
    input.addEventListener("input", mark);
    input.addEventListener("change", mark);
    group.hidden = false;
    mark();
  }
  function init() {
    document.querySelectorAll("[data-date-chips]").forEach(wire);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
