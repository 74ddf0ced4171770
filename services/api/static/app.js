"use strict";
// The newest workflows with a progress bar each, filtered by type and queue, refreshing every
// second; a click on a row shows that workflow's steps. The enqueue form follows the type
// picked (form.js builds it from the type's input schema).
const REFRESH_MS = 1000;
const rows = document.getElementById("workflows");
const state = { types: new Map(), selected: null };

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function progressBar(workflow) {
  const total = workflow.num_steps || 0;
  const done = workflow.steps_completed || 0;
  // A type that publishes no progress: full once it succeeded, unknown before.
  const finished = total === 0 && workflow.status === "SUCCESS";
  const percent = finished ? 100 : total > 0 ? Math.round((100 * done) / total) : 0;
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(percent));
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = percent + "%";
  const label = document.createElement("span");
  label.textContent = finished ? "done" : `${done} / ${total || "?"}`;
  bar.append(fill, label);
  return bar;
}

function row(workflow) {
  const tr = document.createElement("tr");
  tr.dataset.workflowId = workflow.workflow_id;
  tr.tabIndex = 0;
  if (workflow.workflow_id === state.selected) tr.className = "selected";
  const progress = document.createElement("td");
  progress.append(progressBar(workflow));
  tr.append(
    cell(workflow.workflow_id, "id"),
    cell(workflow.workflow, "type"),
    cell(workflow.queue, "queue"),
    cell(workflow.status, "status status-" + workflow.status),
    progress,
    cell(new Date(workflow.created_at).toLocaleTimeString()),
  );
  return tr;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function listingPath() {
  const query = new URLSearchParams({ limit: "20" });
  const type = document.getElementById("filter-type").value;
  const queue = document.getElementById("filter-queue").value;
  if (type) query.set("workflow", type);
  if (queue) query.set("queue", queue);
  return "/workflows?" + query;
}

function seconds(from, to) {
  if (!from || !to) return "";
  return ((new Date(to) - new Date(from)) / 1000).toFixed(2) + " s";
}

async function showSteps() {
  const section = document.getElementById("steps");
  if (!state.selected) {
    section.hidden = true;
    return;
  }
  const answer = await getJson(`/workflows/${encodeURIComponent(state.selected)}/steps`);
  document.getElementById("steps-of").textContent = state.selected;
  document.getElementById("step-rows").replaceChildren(
    ...answer.steps.map((step) => {
      const tr = document.createElement("tr");
      const error = step.error ? `${step.error.name || "error"}: ${step.error.message}` : "";
      tr.append(
        cell(step.step_id),
        cell(step.name, "step-name"),
        cell(step.status, "status status-" + step.status),
        cell(step.started_at ? new Date(step.started_at).toLocaleTimeString() : ""),
        cell(seconds(step.started_at, step.completed_at)),
        cell(error, "step-error"),
      );
      return tr;
    }),
  );
  document.getElementById("no-steps").hidden = answer.steps.length > 0;
  section.hidden = false;
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    showPage(await getJson(listingPath()));
    await showSteps();
    error.hidden = true;
  } catch (exc) {
    error.textContent = "Could not load workflows: " + exc.message;
    error.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

function pickType(name) {
  const type = state.types.get(name);
  document.getElementById("type-description").textContent = type.description || "";
  buildInputs(document.getElementById("inputs"), type.input_schema);
  const partition = document.getElementById("partition-key");
  document.getElementById("partition-key-label").hidden = !type.partitioned;
  partition.required = type.partitioned;
  if (!type.partitioned) partition.value = "";
}

async function loadTypes() {
  const registry = await getJson("/workflow-types");
  const picker = document.getElementById("workflow-type");
  for (const type of registry.workflow_types) {
    state.types.set(type.name, type);
    picker.append(option(type.name, type.name));
    document.getElementById("filter-type").append(option(type.name, type.name));
  }
  for (const queue of registry.queues) {
    document.getElementById("filter-queue").append(option(queue.name, queue.name));
  }
  picker.value = registry.default_workflow;
  pickType(picker.value);
  picker.addEventListener("change", () => pickType(picker.value));
}

function enqueueBody() {
  const body = {
    workflow: document.getElementById("workflow-type").value,
    input: readInputs(document.getElementById("inputs")),
  };
  const partition = document.getElementById("partition-key").value;
  const priority = document.getElementById("priority").value;
  const delay = document.getElementById("delay-seconds").value;
  if (partition) body.partition_key = partition;
  if (priority) body.priority = Number(priority);
  if (delay) body.delay_seconds = Number(delay);
  return body;
}

document.getElementById("enqueue").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  delete message.dataset.workflowId;
  let body;
  try {
    body = enqueueBody();
  } catch (exc) {
    message.textContent = exc.message;
    return;
  }
  const response = await fetch("/workflows", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  message.textContent = response.ok ? "Enqueued " + answer.workflow_id : answer.detail;
  if (response.ok) message.dataset.workflowId = answer.workflow_id;
});

rows.addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-workflow-id]");
  if (!tr) return;
  state.selected = tr.dataset.workflowId;
  rows.querySelectorAll("tr.selected").forEach((other) => other.classList.remove("selected"));
  tr.classList.add("selected");
  showSteps().catch((exc) => {
    document.getElementById("error").textContent = "Could not load steps: " + exc.message;
    document.getElementById("error").hidden = false;
  });
});

function showPage(page) {
  rows.replaceChildren(...page.workflows.map(row));
  document.getElementById("empty").hidden = page.workflows.length > 0;
}

for (const id of ["filter-type", "filter-queue"]) {
  document.getElementById(id).addEventListener("change", () => getJson(listingPath()).then(showPage));
}

loadTypes()
  .catch((exc) => {
    document.getElementById("message").textContent = "Could not load the workflow types: " + exc.message;
  })
  .finally(refresh);
