"""What search mode saves and how well it finds (``make bench``, docs/discovery.md).

A realistic catalog: the reference servers the tests run (server-everything, mcp-server-time,
server-filesystem, their tools as they list them, described in ``_REFERENCE``) and synthetic
servers of the kinds people connect (issue trackers, chat, storage, databases, clouds), to
about 300 tools. Measured: the size of ``tools/list`` in both modes (bytes, and tokens at 4
bytes a token), the time ``find_tools`` takes at that size, and how well it ranks on task
descriptions written for it: recall@3 and mean reciprocal rank, on a *tuning* part (the one the
column weights were chosen on) and a *held-out* part they never were.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

import msgspec

from watchgate.protocol.discovery import ToolIndex, gateway_tools

__all__ = ["catalog", "discovery_scenario"]

_REFERENCE: Final = {
    "everything": {
        "echo": "Echoes back the input string",
        "get-annotated-message": "Demonstrates how annotations can be used to provide metadata about content",
        "get-env": "Returns all environment variables, helpful for debugging MCP server configuration",
        "get-resource-links": "Returns up to ten resource links that reference different types of resources",
        "get-resource-reference": "Returns a resource reference that can be used by MCP clients",
        "get-structured-content": "Returns structured content with an output schema for validation",
        "get-sum": "Returns the sum of two numbers",
        "get-tiny-image": "Returns a tiny MCP logo image",
        "gzip-file-as-resource": "Compresses a single file using gzip compression",
        "toggle-simulated-logging": "Toggles simulated, random-leveled logging on or off",
        "toggle-subscriber-updates": "Toggles simulated resource subscription updates on or off",
        "trigger-elicitation-request": "Trigger a request from the server for user elicitation",
        "trigger-long-running-operation": "Demonstrates a long running operation with progress updates",
        "trigger-sampling-request": "Trigger a request from the server for LLM sampling",
    },
    "time": {
        "get_current_time": "Get current time in a specific timezones",
        "convert_time": "Convert time between timezones",
    },
    "filesystem": {
        "read_text_file": "Read the complete contents of a file from the file system as text",
        "read_media_file": "Read an image or audio file and return its base64 data and MIME type",
        "read_multiple_files": "Read the contents of multiple files simultaneously",
        "write_file": "Create a new file or completely overwrite an existing file with new content",
        "edit_file": "Make line-based edits to a text file, returning a git-style diff",
        "create_directory": "Create a new directory or ensure a directory exists",
        "list_directory": "Get a detailed listing of all files and directories in a specified path",
        "directory_tree": "Get a recursive tree view of files and directories as a JSON structure",
        "move_file": "Move or rename files and directories",
        "search_files": "Recursively search for files and directories matching a pattern",
        "get_file_info": "Retrieve detailed metadata about a file or directory: size, times, permissions",
        "list_allowed_directories": "Returns the list of directories this server is allowed to access",
    },
}
# synthetic servers: (server, product, [(object, object phrase)]), each object with five verbs
_SYNTHETIC: Final = [
    (
        "github",
        "GitHub",
        [
            ("issue", "an issue"),
            ("pull_request", "a pull request"),
            ("repository", "a repository"),
            ("branch", "a branch"),
            ("release", "a release"),
        ],
    ),
    (
        "gitlab",
        "GitLab",
        [("merge_request", "a merge request"), ("pipeline", "a CI pipeline"), ("project", "a project")],
    ),
    ("jira", "Jira", [("ticket", "a ticket"), ("sprint", "a sprint"), ("comment", "a comment on a ticket")]),
    ("linear", "Linear", [("issue", "an issue"), ("cycle", "a cycle"), ("team", "a team")]),
    (
        "slack",
        "Slack",
        [("message", "a message in a channel"), ("channel", "a channel"), ("reminder", "a reminder")],
    ),
    ("gmail", "Gmail", [("email", "an email"), ("draft", "an email draft"), ("label", "a mail label")]),
    ("calendar", "Google Calendar", [("event", "a calendar event"), ("calendar", "a calendar")]),
    (
        "drive",
        "Google Drive",
        [("document", "a document"), ("folder", "a folder"), ("permission", "a sharing permission")],
    ),
    ("notion", "Notion", [("page", "a page"), ("database", "a database")]),
    ("confluence", "Confluence", [("space", "a wiki space"), ("article", "a wiki article")]),
    ("postgres", "PostgreSQL", [("table", "a table"), ("query", "a saved SQL query"), ("index", "an index")]),
    ("s3", "Amazon S3", [("bucket", "a storage bucket"), ("object", "a stored object")]),
    ("k8s", "Kubernetes", [("pod", "a pod"), ("deployment", "a deployment"), ("service", "a service")]),
    ("sentry", "Sentry", [("error_event", "an error event"), ("alert_rule", "an alert rule")]),
    ("stripe", "Stripe", [("invoice", "an invoice"), ("customer", "a customer"), ("refund", "a refund")]),
    ("figma", "Figma", [("design_file", "a design file"), ("frame", "a frame")]),
    ("zendesk", "Zendesk", [("support_ticket", "a support ticket"), ("macro", "a support macro")]),
    ("datadog", "Datadog", [("monitor", "a monitor"), ("dashboard", "a dashboard")]),
    ("asana", "Asana", [("task", "a task"), ("project", "a project")]),
    ("dropbox", "Dropbox", [("file", "a file in the cloud"), ("shared_link", "a shared link")]),
    ("twilio", "Twilio", [("sms", "an SMS text message"), ("call", "a phone call")]),
]
_VERBS: Final = [
    ("list", "List every {obj} in {product}, newest first."),
    ("get", "Get one {obj} from {product} by its id, with all its fields."),
    ("create", "Create {article} new {obj} in {product}."),
    ("update", "Change the fields of {article} existing {obj} in {product}."),
    ("delete", "Delete {article} {obj} from {product} for good."),
]
# (task as a person says it, the tool it needs); tuned on the first part, the held-out part never
_TUNING: Final = [
    ("open a new ticket in jira", "jira__create_ticket"),
    ("send a message to the team channel on slack", "slack__create_message"),
    ("what time is it in Tokyo", "time__get_current_time"),
    ("convert 3pm New York time to Paris time", "time__convert_time"),
    ("read the contents of a text file", "filesystem__read_text_file"),
    ("show the files in a folder", "filesystem__list_directory"),
    ("open a pull request on github", "github__create_pull_request"),
    ("list the open issues of a github repository", "github__list_issue"),
    ("echo my message back", "everything__echo"),
    ("add two numbers", "everything__get-sum"),
    ("refund a stripe payment", "stripe__create_refund"),
    ("delete an s3 bucket", "s3__delete_bucket"),
    ("restart a kubernetes deployment", "k8s__update_deployment"),
    ("draft an email in gmail", "gmail__create_draft"),
    ("schedule a meeting on my calendar", "calendar__create_event"),
    ("rename a file", "filesystem__move_file"),
    ("find files matching a pattern", "filesystem__search_files"),
    ("create a wiki article in confluence", "confluence__create_article"),
    ("list the pods running in the cluster", "k8s__list_pod"),
    ("get an invoice from stripe", "stripe__get_invoice"),
]
_HELD_OUT: Final = [
    ("comment on a jira ticket", "jira__create_comment"),
    ("make a new folder on disk", "filesystem__create_directory"),
    ("show the details of a gitlab merge request", "gitlab__get_merge_request"),
    ("post in a slack channel", "slack__create_message"),
    ("what is the size and modification time of a file", "filesystem__get_file_info"),
    ("share a google drive document with someone", "drive__create_permission"),
    ("run a long operation and report progress", "everything__trigger-long-running-operation"),
    ("upload an object to s3", "s3__create_object"),
    ("close an issue in linear", "linear__update_issue"),
    ("look up a customer in stripe", "stripe__get_customer"),
]


def catalog() -> list[dict[str, Any]]:
    """About 300 tools as a client would list them (namespaced), reference and synthetic."""
    tools: list[dict[str, Any]] = []
    for server, described in _REFERENCE.items():
        for name, description in described.items():
            tools.append(
                _tool(f"{server}__{name}", description, ["path", "message", "timezone"][len(tools) % 3])
            )
    for server, product, objects in _SYNTHETIC:
        for obj, phrase in objects:
            article, _, words = phrase.partition(" ")
            for verb, template in _VERBS:
                description = template.format(obj=words, product=product, article=article)
                tools.append(_tool(f"{server}__{verb}_{obj}", description, f"{obj}_id"))
    return tools


def _tool(name: str, description: str, parameter: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {parameter: {"type": "string", "description": f"the {parameter}"}},
    }
    return {"name": name, "description": description, "inputSchema": schema}


def _quality(index: ToolIndex, tasks: list[tuple[str, str]]) -> dict[str, float]:
    hits, reciprocal = 0, 0.0
    for task, wanted in tasks:
        names = [tool["name"] for tool in index.search(task, 10)]
        if wanted in names[:3]:
            hits += 1
        if wanted in names:
            reciprocal += 1 / (names.index(wanted) + 1)
    return {"tasks": len(tasks), "recall_at_3": hits / len(tasks), "mrr": round(reciprocal / len(tasks), 3)}


def discovery_scenario(runs: int = 200) -> dict[str, Any]:
    """Sizes of ``tools/list`` in both modes, ``find_tools`` latency, ranking quality."""
    tools = catalog()
    listed = msgspec.json.encode({"tools": tools})
    searching = msgspec.json.encode({"tools": gateway_tools()})
    started = time.perf_counter()
    index = ToolIndex(listed)
    build_ms = (time.perf_counter() - started) * 1000
    timings = []
    for n in range(runs):
        task = (_TUNING + _HELD_OUT)[n % (len(_TUNING) + len(_HELD_OUT))][0]
        began = time.perf_counter()
        index.search(task, 8)
        timings.append((time.perf_counter() - began) * 1e6)
    result = {
        "status": "ok",
        "tools": len(tools),
        "list_bytes": len(listed),
        "list_tokens": len(listed) // 4,
        "search_bytes": len(searching),
        "search_tokens": len(searching) // 4,
        "index_build_ms": round(build_ms, 2),
        "find_p50_us": round(statistics.median(timings), 1),
        "tuning": _quality(index, _TUNING),
        "held_out": _quality(index, _HELD_OUT),
    }
    index.close()
    return result


def table(results: dict[str, Any]) -> str:
    """The discovery lines of the report."""
    if results.get("status") != "ok":
        return f"discovery: {results.get('error', 'not run')}"
    t, h = results["tuning"], results["held_out"]
    return "\n".join(
        [
            f"discovery: {results['tools']} tools; tools/list {results['list_bytes']:,} bytes "
            f"(~{results['list_tokens']:,} tokens) in list mode, {results['search_bytes']:,} bytes "
            f"(~{results['search_tokens']:,} tokens) in search mode",
            f"discovery: find_tools p50 {results['find_p50_us']} us, "
            f"index built in {results['index_build_ms']} ms",
            f"discovery: recall@3 {t['recall_at_3']:.2f} / MRR {t['mrr']} on {t['tasks']} tuning tasks, "
            f"{h['recall_at_3']:.2f} / {h['mrr']} on {h['tasks']} held-out tasks",
        ]
    )
