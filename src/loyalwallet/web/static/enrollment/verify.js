// The code page: a countdown on "send a new code" (the server enforces the wait anyway),
// and submitting by itself once six digits are in (typed, pasted or filled from the SMS).
(function () {
  var button = document.querySelector("[data-wait]");
  if (button) {
    var left = parseInt(button.getAttribute("data-wait"), 10) || 0;
    var label = button.getAttribute("data-label");
    var waitLabel = button.getAttribute("data-wait-label");
    var tick = function () {
      if (left > 0) {
        button.disabled = true;
        button.textContent = waitLabel.replace("%(n)s", String(left));
        left -= 1;
        setTimeout(tick, 1000);
      } else {
        button.disabled = false;
        button.textContent = label;
      }
    };
    tick();
  }
  var input = document.getElementById("code");
  if (input) {
    input.addEventListener("input", function () {
      var digits = input.value.replace(/\D/g, "").slice(0, 6);
      if (digits !== input.value) input.value = digits;
      if (digits.length === 6 && !input.dataset.sent) {
        input.dataset.sent = "1";
        input.form.submit();
      }
    });
  }
})();
