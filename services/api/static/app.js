"use strict";
// The newest workflows with a progress bar each, filtered by type and queue, refreshing every
// second; a click on a row shows that workflow's steps. The enqueue form follows the type
// picked (form.js builds it from the type's input schema).
const REFRESH_MS = 1000;
const rows = document.getElementById("workflows");
const TYPES_RETRY_MS = 2000;
// `listing` numbers the listing requests: an answer older than the last one shown is dropped
// (a refresh still running with the filters changed since).
const state = { types: new Map(), selected: null, listing: 0, shown: 0 };
// With API_AUTH=tokens the API answers 401 until the page sends a token: the page then asks
// for one and keeps it for this tab only (sessionStorage), never in the address or a cookie.
const TOKEN_KEY = "dbos-queue-worker-token";

function withToken(headers, token) {
  return token ? { ...headers, Authorization: "Bearer " + token } : headers;
}

function askForToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("sign-in-reason").textContent = reason;
  document.getElementById("sign-in").hidden = false;
}

document.getElementById("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, field.value.trim());
  field.value = "";
  document.getElementById("sign-in").hidden = true;
  if (state.types.size === 0) loadTypes();
  loadListing().catch((exc) => showError("Could not load workflows: " + exc.message));
});

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

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The answer's JSON; an HttpError with the problem's detail (or the status line, when a proxy
// answered with something that is not JSON). A 401 asks for a token, unless the request went
// out before the token now kept was given (its answer says nothing of that token).
async function answerOf(response, token) {
  let body = null;
  try {
    body = await response.json();
  } catch (exc) {
    body = null;
  }
  const detail = (body && body.detail) || `${response.status} ${response.statusText}`;
  if (response.status === 401 && sessionStorage.getItem(TOKEN_KEY) === token) {
    askForToken("This API needs a token: " + detail);
  }
  if (!response.ok) throw new HttpError(response.status, detail);
  if (body === null) throw new HttpError(response.status, "the answer is not JSON");
  return body;
}

async function getJson(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = withToken({ Accept: "application/json" }, token);
  return answerOf(await fetch(path, { headers }), token);
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
  const id = state.selected;
  if (!id) {
    section.hidden = true;
    return;
  }
  let answer;
  try {
    answer = await getJson(`/workflows/${encodeURIComponent(id)}/steps`);
  } catch (exc) {
    if (exc.status === 404 && state.selected === id) {
      state.selected = null; // gone (retention): nothing left to show
      section.hidden = true;
      return;
    }
    throw exc;
  }
  if (state.selected !== id) return; // another row was clicked meanwhile
  document.getElementById("steps-of").textContent = id;
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

function showError(text) {
  const error = document.getElementById("error");
  error.textContent = text;
  error.hidden = !text;
}

// The listing with the filters as they are now; an answer overtaken by a later one is dropped.
async function loadListing() {
  const number = ++state.listing;
  const page = await getJson(listingPath());
  if (number < state.shown) return;
  state.shown = number;
  showPage(page);
}

async function refresh() {
  try {
    await loadListing();
    showError("");
  } catch (exc) {
    showError("Could not load workflows: " + exc.message);
  }
  try {
    await showSteps();
  } catch (exc) {
    showError("Could not load the steps: " + exc.message);
  }
  setTimeout(refresh, REFRESH_MS);
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

// The types, for the picker and the filters; tried again until the API answers.
async function loadTypes() {
  let registry;
  try {
    registry = await getJson("/workflow-types");
  } catch (exc) {
    document.getElementById("message").textContent = "Could not load the workflow types: " + exc.message;
    // Without a token, tried again once one is given (the sign-in form calls loadTypes).
    if (!(exc instanceof HttpError && exc.status === 401)) setTimeout(loadTypes, TYPES_RETRY_MS);
    return;
  }
  document.getElementById("message").textContent = "";
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
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const answer = await answerOf(
      await fetch("/workflows", {
        method: "POST",
        headers: withToken({ "Content-Type": "application/json" }, token),
        body: JSON.stringify(body),
      }),
      token,
    );
    message.textContent = "Enqueued " + answer.workflow_id;
    message.dataset.workflowId = answer.workflow_id;
  } catch (exc) {
    message.textContent = exc.message;
  }
});

rows.addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-workflow-id]");
  if (!tr) return;
  state.selected = tr.dataset.workflowId;
  rows.querySelectorAll("tr.selected").forEach((other) => other.classList.remove("selected"));
  tr.classList.add("selected");
  showSteps().catch((exc) => showError("Could not load the steps: " + exc.message));
});

function showPage(page) {
  rows.replaceChildren(...page.workflows.map(row));
  document.getElementById("empty").hidden = page.workflows.length > 0;
}

for (const id of ["filter-type", "filter-queue"]) {
  document.getElementById(id).addEventListener("change", () =>
    loadListing().catch((exc) => showError("Could not load workflows: " + exc.message)),
  );
}

loadTypes();
refresh();
