package projects

import (
	"slices"

	"github.com/slipwayhq/slipway/pkg/events"
)

// triggerKeys are Northflank's notification event keys (the §events map
// of a notification integration), every one of which an integration may
// select. Slipway sends those its lifecycle events stand for (eventMap);
// the others are accepted and stored so a client's configuration round
// trips, and fire when Slipway gains the feature behind them.
var triggerKeys = []string{
	"trigger:service:autoscaling:event", "trigger:service:deployment:status-update",
	"trigger:project:tailscale-regen-failure",
	"trigger:addon-backup:start", "trigger:addon-backup:success", "trigger:addon-backup:failure", "trigger:addon-backup:abort",
	"trigger:build:start", "trigger:build:success", "trigger:build:failure", "trigger:build:abort",
	"trigger:job-run:start", "trigger:job-run:success", "trigger:job-run:failure", "trigger:job-run:abort", "trigger:job-run:terminate",
	"trigger:release-flow-template-run:start", "trigger:release-flow-template-run:update", "trigger:release-flow-template-run:success",
	"trigger:release-flow-template-run:failure", "trigger:release-flow-template-run:aborted",
	"trigger:template-run:queued", "trigger:template-run:start", "trigger:template-run:update", "trigger:template-run:success",
	"trigger:template-run:failure",
	"trigger:resource:certificate-success", "trigger:resource:certificate-final-failure",
	"trigger:cdn:action-success", "trigger:cdn:action-failure", "trigger:cdn:action-delay",
	"trigger:log-sink:paused",
	"trigger:billing:billing-alert-exceeded", "trigger:billing:invoice-payment-action-required", "trigger:billing:invoice-payment-failed",
	"trigger:billing:invoice-paid", "trigger:billing:invoice-carried-over",
	"trigger:infrastructure:service:container-crash", "trigger:infrastructure:service:container-eviction",
	"trigger:infrastructure:build:container-eviction", "trigger:infrastructure:addon:container-crash",
	"trigger:infrastructure:addon:container-eviction", "trigger:infrastructure:job:container-crash",
	"trigger:infrastructure:job:container-eviction",
	"trigger:infrastructure:build:container-cpuSpike90", "trigger:infrastructure:build:container-cpuSustained90",
	"trigger:infrastructure:service:container-cpuSpike90", "trigger:infrastructure:service:container-cpuSustained90",
	"trigger:infrastructure:job:container-cpuSpike90", "trigger:infrastructure:job:container-cpuSustained90",
	"trigger:infrastructure:addon:container-cpuSpike90", "trigger:infrastructure:addon:container-cpuSustained90",
	"trigger:infrastructure:build:container-memorySpike90", "trigger:infrastructure:build:container-memorySustained90",
	"trigger:infrastructure:service:container-memorySpike90", "trigger:infrastructure:service:container-memorySustained90",
	"trigger:infrastructure:job:container-memorySpike90", "trigger:infrastructure:job:container-memorySustained90",
	"trigger:infrastructure:addon-volume:usage-75-exceeded", "trigger:infrastructure:addon-volume:usage-90-exceeded",
	"trigger:infrastructure:platform-volume:usage-75-exceeded", "trigger:infrastructure:platform-volume:usage-90-exceeded",
	"trigger:infrastructure:byoc:cluster:error", "trigger:infrastructure:byoc:node-pool:error",
	"trigger:infrastructure:byoc:scheduling:error", "trigger:infrastructure:byoc:volume:error",
	"trigger:infrastructure:byoc:volume:attach",
}

// knownTrigger reports whether key is one of Northflank's event keys.
func knownTrigger(key string) bool { return slices.Contains(triggerKeys, key) }

// WebhookEvents are the event names a "your-app" webhook may subscribe
// to ("*" subscribes to all of them), in the order the README lists them.
var WebhookEvents = []string{
	"project.created", "project.updated", "project.deleted",
	"team.member_added", "team.member_removed", "team.member_updated",
	"deployment.started", "deployment.completed", "deployment.failed",
	"build.started", "build.succeeded", "build.failed", "build.aborted",
	"job_run.started", "job_run.succeeded", "job_run.failed", "job_run.aborted",
	"addon.backup_started", "addon.backup_completed", "addon.backup_failed", "addon.backup_aborted",
}

// eventKind is what a lifecycle event means to notifications: the
// Northflank key it fires (without "trigger:"; "" for none), the webhook
// event name, and how to say it in a chat message.
type eventKind struct {
	Trigger string
	Name    string
	Title   string
	Level   string
}

// eventMap maps lifecycle event types to what they fire. The event data
// of each carries teamId and, except members', projectId (projects'
// events carry the project as id).
var eventMap = map[string]eventKind{
	events.SubjectFor("builds", "build", "started"):   {"build:start", "build.started", "Build started", "info"},
	events.SubjectFor("builds", "build", "succeeded"): {"build:success", "build.succeeded", "Build succeeded", "success"},
	events.SubjectFor("builds", "build", "failed"):    {"build:failure", "build.failed", "Build failed", "error"},
	events.SubjectFor("builds", "build", "aborted"):   {"build:abort", "build.aborted", "Build aborted", "warning"},

	events.SubjectFor("jobs", "run", "started"):   {"job-run:start", "job_run.started", "Job run started", "info"},
	events.SubjectFor("jobs", "run", "succeeded"): {"job-run:success", "job_run.succeeded", "Job run succeeded", "success"},
	events.SubjectFor("jobs", "run", "failed"):    {"job-run:failure", "job_run.failed", "Job run failed", "error"},
	events.SubjectFor("jobs", "run", "aborted"):   {"job-run:abort", "job_run.aborted", "Job run aborted", "warning"},

	events.SubjectFor("addons", "backup", "started"):   {"addon-backup:start", "addon.backup_started", "Addon backup started", "info"},
	events.SubjectFor("addons", "backup", "completed"): {"addon-backup:success", "addon.backup_completed", "Addon backup completed", "success"},
	events.SubjectFor("addons", "backup", "failed"):    {"addon-backup:failure", "addon.backup_failed", "Addon backup failed", "error"},
	events.SubjectFor("addons", "backup", "aborted"):   {"addon-backup:abort", "addon.backup_aborted", "Addon backup aborted", "warning"},
	events.SubjectFor("addons", "schedule", "failed"):  {"addon-backup:failure", "addon.backup_failed", "Scheduled addon backup failed", "error"},

	events.SubjectFor("deployments", "release", "in_progress"): {"service:deployment:status-update", "deployment.started", "Deployment started", "info"},
	events.SubjectFor("deployments", "release", "completed"):   {"service:deployment:status-update", "deployment.completed", "Deployment completed", "success"},
	events.SubjectFor("deployments", "release", "failed"):      {"service:deployment:status-update", "deployment.failed", "Deployment failed", "error"},

	events.SubjectFor("projects", "project", "created"): {"", "project.created", "Project created", "info"},
	events.SubjectFor("projects", "project", "updated"): {"", "project.updated", "Project updated", "info"},
	events.SubjectFor("projects", "project", "deleted"): {"", "project.deleted", "Project deleted", "warning"},

	events.SubjectFor("auth", "member", "added"):   {"", "team.member_added", "Team member added", "info"},
	events.SubjectFor("auth", "member", "removed"): {"", "team.member_removed", "Team member removed", "warning"},
	events.SubjectFor("auth", "member", "updated"): {"", "team.member_updated", "Team member updated", "info"},
}

// NotificationSubjects are the lifecycle events the notifications
// consumer reads: those of eventMap.
func NotificationSubjects() []string {
	out := make([]string, 0, len(eventMap))
	for subject := range eventMap {
		out = append(out, subject)
	}
	slices.Sort(out)
	return out
}

// NotificationConsumer is the durable consumer name of the notifications
// consumer; it stays the same for good (a new name starts again from the
// oldest event the stream holds).
const NotificationConsumer = "projects-notifications"

// knownWebhookEvent reports whether name may be subscribed to.
func knownWebhookEvent(name string) bool {
	return name == "*" || slices.Contains(WebhookEvents, name)
}

// wantsTrigger reports whether an integration sends key.
func (in Integration) wantsTrigger(key, project string) bool {
	if key == "" || !slices.Contains(in.Events, "trigger:"+key) {
		return false
	}
	return !in.Restricted || (project != "" && slices.Contains(in.Projects, project))
}

// wants reports whether a webhook sends the event named name.
func (w Webhook) wants(name string) bool {
	return slices.Contains(w.Events, "*") || slices.Contains(w.Events, name)
}
