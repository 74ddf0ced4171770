"use strict";
// The enqueue form of one workflow type, built from its input JSON Schema (GET /workflow-types):
// one field per property; numbers and integers with their bounds, booleans as checkboxes, enums
// as lists, other strings as text, anything else as JSON text.

// The id of a property's field: num_steps -> input-num-steps (prefixed: a property may be
// named like one of the page's own controls, priority or message).
function fieldId(name) {
  return "input-" + name.replace(/[^A-Za-z0-9]+/g, "-");
}

function numberField(spec, integer) {
  const input = document.createElement("input");
  input.type = "number";
  input.step = integer ? "1" : "any";
  if (spec.minimum !== undefined) input.min = String(spec.minimum);
  if (spec.maximum !== undefined) input.max = String(spec.maximum);
  return input;
}

// A list of choices; an optional one starts with "(not set)", so it can be left out.
function choices(values, optional) {
  const select = document.createElement("select");
  if (optional) {
    const unset = document.createElement("option");
    unset.value = "";
    unset.textContent = "(not set)";
    select.append(unset);
  }
  for (const value of values) {
    const option = document.createElement("option");
    option.value = JSON.stringify(value);
    option.textContent = String(value);
    select.append(option);
  }
  return select;
}

function fieldFor(spec, required) {
  const optional = !required && spec.default === undefined;
  if (Array.isArray(spec.enum)) return choices(spec.enum, optional);
  // A boolean that may be left out is a choice of three; otherwise a checkbox.
  if (spec.type === "boolean" && optional) return choices([true, false], true);
  if (spec.type === "integer" || spec.type === "number") return numberField(spec, spec.type === "integer");
  if (spec.type === "boolean" || spec.type === "string") {
    const input = document.createElement("input");
    input.type = spec.type === "boolean" ? "checkbox" : "text";
    return input;
  }
  return document.createElement("textarea");
}

function setDefault(field, spec) {
  if (spec.default === undefined) return;
  if (field.type === "checkbox") field.checked = Boolean(spec.default);
  else if (field.tagName === "SELECT") field.value = JSON.stringify(spec.default);
  else if (field.tagName === "TEXTAREA") field.value = JSON.stringify(spec.default);
  else field.value = String(spec.default);
}

// Fills `fieldset` with the fields of `schema`'s properties.
function buildInputs(fieldset, schema) {
  fieldset.querySelectorAll("label").forEach((label) => label.remove());
  const required = new Set(schema.required || []);
  for (const [name, spec] of Object.entries(schema.properties || {})) {
    const label = document.createElement("label");
    label.textContent = name + (required.has(name) ? " *" : "") + " ";
    const field = fieldFor(spec, required.has(name));
    field.id = fieldId(name);
    field.dataset.property = name;
    field.required = required.has(name) && field.type !== "checkbox";
    if (spec.description) label.title = spec.description;
    setDefault(field, spec);
    label.append(field);
    fieldset.append(label);
  }
}

// The input object the fields hold; a field left empty is left out (the schema's default
// applies). Throws an Error naming a JSON field that does not parse.
function readInputs(fieldset) {
  const input = {};
  for (const field of fieldset.querySelectorAll("[data-property]")) {
    const name = field.dataset.property;
    if (field.type === "checkbox") input[name] = field.checked;
    else if (field.value === "") continue;
    else if (field.type === "number") input[name] = Number(field.value);
    else if (field.tagName === "SELECT") input[name] = JSON.parse(field.value);
    else if (field.tagName === "TEXTAREA") {
      try {
        input[name] = JSON.parse(field.value);
      } catch (exc) {
        throw new Error(`${name} is not valid JSON`);
      }
    } else input[name] = field.value;
  }
  return input;
}
