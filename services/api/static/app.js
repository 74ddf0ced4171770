"use strict";
// Lists the newest workflows with a progress bar each, refreshing every second.
const REFRESH_MS = 1000;
const rows = document.getElementById("workflows");

function progressBar(workflow) {
  const total = workflow.num_steps || 0;
  const done = workflow.steps_completed || 0;
  const percent = total > 0 ? Math.round((100 * done) / total) : 0;
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
  label.textContent = `${done} / ${total || "?"}`;
  bar.append(fill, label);
  return bar;
}

function row(workflow) {
  const tr = document.createElement("tr");
  tr.dataset.workflowId = workflow.workflow_id;
  const cells = [workflow.workflow_id, workflow.status, null, new Date(workflow.created_at).toLocaleTimeString()];
  cells.forEach((text, index) => {
    const td = document.createElement("td");
    if (index === 2) td.append(progressBar(workflow));
    else td.textContent = text;
    if (index === 0) td.className = "id";
    if (index === 1) td.className = "status status-" + workflow.status;
    tr.append(td);
  });
  return tr;
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/workflows?limit=20", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
    const page = await response.json();
    rows.replaceChildren(...page.workflows.map(row));
    document.getElementById("empty").hidden = page.workflows.length > 0;
    error.hidden = true;
  } catch (exc) {
    error.textContent = "Could not load workflows: " + exc.message;
    error.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

document.getElementById("enqueue").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  const body = {
    num_steps: Number(document.getElementById("num-steps").value),
    step_seconds: Number(document.getElementById("step-seconds").value),
  };
  const response = await fetch("/workflows", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  message.textContent = response.ok ? "Enqueued " + answer.workflow_id : answer.detail;
  if (response.ok) message.dataset.workflowId = answer.workflow_id;
});

refresh();
