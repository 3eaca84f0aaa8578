package apierr

import (
	"strconv"

	"google.golang.org/grpc/codes"
)

// Reason is a stable, machine-readable error identifier in UPPER_SNAKE_CASE.
// It travels as the google.rpc.ErrorInfo reason of a gRPC status and becomes
// the "id" of the Northflank error envelope. Clients match on it, so a
// reason's string never changes once released; every reason is declared
// below, once, and nowhere else.
type Reason string

// Reasons shared by every service and the gateway. The HTTP status follows
// from the gRPC code the error carries (the gateway's one table) or, for
// the gateway's own answers, is the one stated here.
const (
	// ReasonNotFound: the resource does not exist or is not visible to the
	// caller (the two are indistinguishable on purpose). 404.
	ReasonNotFound Reason = "NOT_FOUND"
	// ReasonAlreadyExists: a create whose derived id is already taken in its
	// parent. 409.
	ReasonAlreadyExists Reason = "ALREADY_EXISTS"
	// ReasonConcurrentModification: a write kept losing its race with other
	// writers of the same resource; the caller may retry. 409.
	ReasonConcurrentModification Reason = "CONCURRENT_MODIFICATION"
	// ReasonValidationFailed: malformed or invalid input; details name each
	// offending field. 400.
	ReasonValidationFailed Reason = "VALIDATION_FAILED"
	// ReasonUnavailable: a dependency (database, event bus, another
	// service) is down; the caller may retry. 503.
	ReasonUnavailable Reason = "UNAVAILABLE"
	// ReasonInternal: any unexpected failure; the cause is logged, never
	// shown. 500.
	ReasonInternal Reason = "INTERNAL"
	// ReasonUnauthenticated: no credentials, or credentials that do not
	// resolve (unknown, expired, revoked). 401.
	ReasonUnauthenticated Reason = "UNAUTHENTICATED"
	// ReasonPermissionDenied: the credentials resolve but do not grant what
	// the request needs. 403.
	ReasonPermissionDenied Reason = "PERMISSION_DENIED"
	// ReasonNoAccessRule: the method has no access rule, so no caller may
	// use it (fail closed). 403.
	ReasonNoAccessRule Reason = "NO_ACCESS_RULE"
	// ReasonInternalOnly: the method is for calls between Slipway services
	// and the caller did not prove to be one. 403.
	ReasonInternalOnly Reason = "INTERNAL_ONLY"
	// ReasonNotAuthorized: a streaming RPC whose request skipped
	// authorization, refused rather than served unchecked. 403.
	ReasonNotAuthorized Reason = "NOT_AUTHORIZED"
	// ReasonQuotaExceeded: the caller's hourly request quota is spent. 429.
	ReasonQuotaExceeded Reason = "QUOTA_EXCEEDED"
)

// Reasons of the gateway's own answers, given before or instead of any
// service call.
const (
	// ReasonNotReady: the readiness check failed; details list the checks.
	// 503.
	ReasonNotReady Reason = "NOT_READY"
	// ReasonRouteNotFound: no route matches the path (or the route is
	// switched off, like /metrics when disabled). 404.
	ReasonRouteNotFound Reason = "ROUTE_NOT_FOUND"
	// ReasonMethodNotAllowed: the path exists but not with this method; the
	// Allow header lists the ones it has. 405.
	ReasonMethodNotAllowed Reason = "METHOD_NOT_ALLOWED"
	// ReasonBodyTooLarge: the request body exceeds the gateway's limit. 413.
	ReasonBodyTooLarge Reason = "BODY_TOO_LARGE"
	// ReasonBodyUnreadable: reading the request body failed midway. 400.
	ReasonBodyUnreadable Reason = "BODY_UNREADABLE"
	// ReasonUnsupportedAPIVersion: the Accept header asks for an
	// api_version the gateway does not speak; details list the supported
	// ones. 422.
	ReasonUnsupportedAPIVersion Reason = "UNSUPPORTED_API_VERSION"
	// ReasonBadInit: a WebSocket channel's client broke the protocol: its
	// first message was not a valid init (log tails, exec sessions), or a
	// later one is not a frame the channel takes (exec sessions). Sent in
	// an error message before the socket closes with 1008; 400 in the
	// message's status.
	ReasonBadInit Reason = "BAD_INIT"
	// ReasonIdempotencyKeyReused: a POST with an Idempotency-Key the same
	// credential already used for a different request (another method,
	// path or body) within the keys' lifetime. 422.
	ReasonIdempotencyKeyReused Reason = "IDEMPOTENCY_KEY_REUSED"
	// ReasonIdempotencyKeyInUse: a POST with an Idempotency-Key whose
	// first request is still running after the gateway waited for it;
	// the caller may retry. 409.
	ReasonIdempotencyKeyInUse Reason = "IDEMPOTENCY_KEY_IN_USE"
)

// Reasons of the auth service.
const (
	// ReasonUserRequired: only a user may do this (create a team, own an
	// OAuth client) and the caller is not one, such as a team token. 403.
	ReasonUserRequired Reason = "USER_REQUIRED"
	// ReasonOAuthDisabled: an OAuth client call on an install whose OAuth2
	// server is not enabled. 501.
	ReasonOAuthDisabled Reason = "OAUTH_DISABLED"
	// ReasonLastAdmin: the change would leave a team without an admin. 409.
	ReasonLastAdmin Reason = "LAST_ADMIN"
	// ReasonRoleBuiltin: a built-in role cannot be changed or deleted. 409.
	ReasonRoleBuiltin Reason = "ROLE_BUILTIN"
	// ReasonRoleInUse: a role still held by a member or an unrevoked token
	// cannot be deleted. 409.
	ReasonRoleInUse Reason = "ROLE_IN_USE"
	// ReasonRoleFallback: removing a member from the role members fall back
	// to; every member holds exactly one role, so there is nothing left to
	// fall back on. 409.
	ReasonRoleFallback Reason = "ROLE_FALLBACK"
	// ReasonAlreadyMember: the user being added is already a member of the
	// team. 409.
	ReasonAlreadyMember Reason = "ALREADY_MEMBER"
)

// Reasons of the projects service.
const (
	// ReasonProjectRestricted: the credentials are restricted to other
	// projects than the one named, or, restricted to projects at all, ask
	// for a team-level action. 403.
	ReasonProjectRestricted Reason = "PROJECT_RESTRICTED"
	// ReasonProjectNotEmpty: a project still holding resources is deleted
	// without delete_child_objects. 409.
	ReasonProjectNotEmpty Reason = "PROJECT_NOT_EMPTY"
)

// Reasons of the jobs service.
const (
	// ReasonJobTypeMismatch: a create-or-update that would turn a manual job
	// into a cron job or back. 409.
	ReasonJobTypeMismatch Reason = "JOB_TYPE_MISMATCH"
	// ReasonNotACronJob: suspending or resuming the schedule of a manual
	// job. 409.
	ReasonNotACronJob Reason = "NOT_A_CRON_JOB"
	// ReasonRunConcluded: aborting a run that has already concluded. 409.
	ReasonRunConcluded Reason = "RUN_CONCLUDED"
	// ReasonNoBuild: running a job that builds from git before a build of
	// its branch succeeded (or whose build this driver cannot run). 409.
	ReasonNoBuild Reason = "NO_BUILD"
	// ReasonNotFromGit: a build setting (build arguments, options, source)
	// asked of a job that does not build from git. 409.
	ReasonNotFromGit Reason = "NOT_FROM_GIT"
)

// Reasons of exec sessions (pkg/execstream), shared by every component
// that runs commands in its workloads.
const (
	// ReasonNotRunning: a command sent to a workload that has no running
	// instance (paused, scaled to zero, stopped meanwhile). 409.
	ReasonNotRunning Reason = "NOT_RUNNING"
	// ReasonExecUnsupported: the install's runtime driver cannot run
	// commands inside workloads. 501.
	ReasonExecUnsupported Reason = "EXEC_UNSUPPORTED"
)

// Reasons of the deployments service.
const (
	// ReasonBuildDeleted: deploying (or rolling back to) a build whose
	// artifact was deleted (retention, or its service deleted). 409.
	ReasonBuildDeleted Reason = "BUILD_DELETED"
	// ReasonServiceTypeMismatch: a create-or-update that would change a
	// service's type, or a build setting asked of a service that does not
	// build. 409.
	ReasonServiceTypeMismatch Reason = "SERVICE_TYPE_MISMATCH"
)

// Reasons of the builds service.
const (
	// ReasonBuildConcluded: aborting a build that has already concluded.
	// 409.
	ReasonBuildConcluded Reason = "BUILD_CONCLUDED"
	// ReasonWebhookReplay: a git host's event with a delivery id already
	// received (a replay, or a redelivery of an event already acted on).
	// 409.
	ReasonWebhookReplay Reason = "WEBHOOK_REPLAY"
	// ReasonRemoteUnreachable: the service's repository could not be read
	// (unreachable, not a git repository, refused credentials). 409.
	ReasonRemoteUnreachable Reason = "REMOTE_UNREACHABLE"
)

// Reasons of the addons service.
const (
	// ReasonAddonBusy: the addon is not in a state for this (not running
	// for a backup or restore; a backup, restore, upgrade or deletion
	// under way). 409.
	ReasonAddonBusy Reason = "ADDON_BUSY"
	// ReasonAddonNotPaused: resuming an addon that is not paused. 409.
	ReasonAddonNotPaused Reason = "ADDON_NOT_PAUSED"
	// ReasonAddonTypeMismatch: a create-or-update that would change an
	// addon's type. 409.
	ReasonAddonTypeMismatch Reason = "ADDON_TYPE_MISMATCH"
	// ReasonAddonUpgradeUnsupported: a version change the engine cannot
	// make in place (a major upgrade). 409.
	ReasonAddonUpgradeUnsupported Reason = "ADDON_UPGRADE_UNSUPPORTED"
	// ReasonAddonDestinationUnsupported: a backup to a custom destination
	// where none can be used. 409.
	ReasonAddonDestinationUnsupported Reason = "ADDON_DESTINATION_UNSUPPORTED"
	// ReasonBackupInProgress: deleting a backup still being taken. 409.
	ReasonBackupInProgress Reason = "BACKUP_IN_PROGRESS"
	// ReasonBackupConcluded: aborting a backup or restore that has
	// already concluded. 409.
	ReasonBackupConcluded Reason = "BACKUP_CONCLUDED"
	// ReasonBackupNotRestorable: restoring (or downloading) a backup that
	// did not complete, or is of another type or version. 409.
	ReasonBackupNotRestorable Reason = "BACKUP_NOT_RESTORABLE"
	// ReasonScheduleExists: a second backup schedule of the same interval
	// and backup type on an addon. 409.
	ReasonScheduleExists Reason = "SCHEDULE_EXISTS"
	// ReasonDownloadLinkExpired: a backup download link past its expiry;
	// the API gives a new one. 409.
	ReasonDownloadLinkExpired Reason = "DOWNLOAD_LINK_EXPIRED"
)

// Reasons of the addons service's backup destinations.
const (
	// ReasonBackupDestinationCheckFailed: the storage of a destination
	// being added or changed failed the check (a test object written,
	// read back and deleted): refused credentials, a missing bucket, an
	// unreachable endpoint. Details name the field to fix. 400.
	ReasonBackupDestinationCheckFailed Reason = "BACKUP_DESTINATION_CHECK_FAILED"
	// ReasonBackupDestinationInUse: deleting a destination that still
	// holds backups. 409.
	ReasonBackupDestinationInUse Reason = "BACKUP_DESTINATION_IN_USE"
)

// Reasons of the projects service's notifications.
const (
	// ReasonDeliveryNotFailed: sending again a delivery that has not
	// failed (it is pending or succeeded). 409.
	ReasonDeliveryNotFailed Reason = "DELIVERY_NOT_FAILED"
)

// Reasons lists every declared reason, for documentation and for the test
// that keeps them well-formed and distinct.
func Reasons() []Reason {
	return []Reason{
		ReasonNotFound, ReasonAlreadyExists, ReasonConcurrentModification, ReasonValidationFailed,
		ReasonUnavailable, ReasonInternal, ReasonUnauthenticated, ReasonPermissionDenied,
		ReasonNoAccessRule, ReasonInternalOnly, ReasonNotAuthorized, ReasonQuotaExceeded,
		ReasonNotReady, ReasonRouteNotFound, ReasonMethodNotAllowed, ReasonBodyTooLarge,
		ReasonBodyUnreadable, ReasonUnsupportedAPIVersion, ReasonBadInit,
		ReasonIdempotencyKeyReused, ReasonIdempotencyKeyInUse,
		ReasonUserRequired, ReasonOAuthDisabled, ReasonLastAdmin, ReasonRoleBuiltin,
		ReasonRoleInUse, ReasonRoleFallback, ReasonAlreadyMember,
		ReasonProjectRestricted, ReasonProjectNotEmpty,
		ReasonJobTypeMismatch, ReasonNotACronJob, ReasonRunConcluded, ReasonNoBuild, ReasonNotFromGit,
		ReasonNotRunning, ReasonExecUnsupported,
		ReasonBuildDeleted, ReasonServiceTypeMismatch,
		ReasonBuildConcluded, ReasonWebhookReplay, ReasonRemoteUnreachable,
		ReasonAddonBusy, ReasonAddonNotPaused, ReasonAddonTypeMismatch, ReasonAddonUpgradeUnsupported,
		ReasonAddonDestinationUnsupported, ReasonBackupInProgress, ReasonBackupConcluded, ReasonBackupNotRestorable,
		ReasonScheduleExists, ReasonDownloadLinkExpired,
		ReasonBackupDestinationCheckFailed, ReasonBackupDestinationInUse,
		ReasonDeliveryNotFailed,
	}
}

// HTTPStatusReason is the reason of a gateway answer with an HTTP status
// that has no reason of its own (a routing failure other than 404 and
// 405, such as 400 for an undecodable path or 501): "HTTP_<status>". It is
// derived rather than declared because the router decides the status.
func HTTPStatusReason(status int) Reason {
	return Reason("HTTP_" + strconv.Itoa(status))
}

// CodeReason is the reason the gateway shows for a gRPC status that did
// not come from a Slipway service and so carries no reason (a backend that
// cannot be reached, a deadline, grpc-gateway's own decoding): the code's
// name, such as "Unavailable" or "NotFound". Those ids predate this
// vocabulary and clients may match on them, so they keep gRPC's spelling
// instead of UPPER_SNAKE_CASE.
func CodeReason(c codes.Code) Reason {
	return Reason(c.String())
}
