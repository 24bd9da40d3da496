// Small behaviours the pages share. No inline script anywhere: the CSP forbids it.

// The label of what is chosen in a form's field `name`: the checked radio's label or
// the selected option's text; "" when nothing is chosen.
function chosenLabel(form, name) {
  var field = form.elements.namedItem(name);
  if (!field) {
    return "";
  }
  if (field.tagName === "SELECT") {
    var option = field.options[field.selectedIndex];
    return option && option.value ? option.text.trim() : "";
  }
  var inputs = field.length !== undefined ? Array.prototype.slice.call(field) : [field];
  for (var i = 0; i < inputs.length; i++) {
    var input = inputs[i];
    if ((input.type === "radio" || input.type === "checkbox") && !input.checked) {
      continue;
    }
    if (!input.value) {
      continue;
    }
    var label = input.labels && input.labels.length ? input.labels[0].textContent : input.value;
    return label.trim();
  }
  return "";
}

// Destructive and decisive forms ask first: <form class="confirm" data-confirm="...">.
// "{verdict}" in the question is replaced by the label of what is chosen in the field
// `verdict`; with nothing chosen the form is sent without asking, and the server answers
// with the field's error.
// A button may ask its own question (data-confirm on the button), for forms with two.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var button = event.submitter;
  var own = button && button.dataset ? button.dataset.confirm : "";
  if (!own && !(form.matches && form.matches("form.confirm"))) {
    return;
  }
  var question = own || form.dataset.confirm || "Are you sure?";
  var unchosen = false;
  question = question.replace(/\{(\w+)\}/g, function (whole, name) {
    var label = chosenLabel(form, name);
    if (!label) {
      unchosen = true;
    }
    return label;
  });
  if (!unchosen && !window.confirm(question)) {
    event.preventDefault();
  }
});
