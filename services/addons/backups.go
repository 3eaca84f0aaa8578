package addons

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// backup loads a backup of an addon the request names.
func (s *Service) backup(ctx context.Context, req request, addonID, id string) (Addon, Backup, error) {
	a, err := s.addon(ctx, req, addonID)
	if err != nil {
		return Addon{}, Backup{}, err
	}
	b, err := s.store.GetBackup(ctx, a.TeamID, a.ProjectID, a.ID, id)
	if err != nil {
		return Addon{}, Backup{}, apierr.FromStore(err, "backup", id)
	}
	return a, b, nil
}

// ListBackups implements AddonsService.
func (s *Service) ListBackups(ctx context.Context, req *addonsv1.ListBackupsRequest) (*addonsv1.ListBackupsResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	scope := "addon-backups/" + a.TeamID + "/" + a.ProjectID + "/" + a.ID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListBackups(ctx, a.TeamID, a.ProjectID, a.ID, p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListBackupsResponse{Backups: make([]*addonsv1.Backup, 0, len(list))}
	last := ""
	for _, b := range list {
		resp.Backups = append(resp.Backups, s.backupOf(ctx, b))
		last = b.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateBackup implements AddonsService.
func (s *Service) CreateBackup(ctx context.Context, req *addonsv1.CreateBackupRequest) (*addonsv1.CreateBackupResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if len(req.GetAdditionalDestinations()) > 0 {
		return nil, apierr.InvalidField("additionalDestinations", "additional destinations are not available yet")
	}
	b, err := s.startBackup(ctx, a, backupOptions{Name: req.GetName(), Type: req.GetBackupType(),
		Compression: req.GetCompressionType(), DestinationID: req.GetCustomDestinationId()})
	if err != nil {
		return nil, err
	}
	return &addonsv1.CreateBackupResponse{Backup: s.backupOf(ctx, b)}, nil
}

// GetBackup implements AddonsService.
func (s *Service) GetBackup(ctx context.Context, req *addonsv1.GetBackupRequest) (*addonsv1.GetBackupResponse, error) {
	_, b, err := s.backup(ctx, req, req.GetAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	return &addonsv1.GetBackupResponse{Backup: s.backupOf(ctx, b)}, nil
}

// DeleteBackup implements AddonsService; a backup still being taken is
// aborted first (409 until it is).
func (s *Service) DeleteBackup(ctx context.Context, req *addonsv1.DeleteBackupRequest) (*addonsv1.DeleteBackupResponse, error) {
	_, b, err := s.backup(ctx, req, req.GetAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	if b.Status == JobInProgress || b.Status == JobScheduled || b.Status == JobAborting {
		return nil, apierr.Conflict(apierr.ReasonBackupInProgress, "backup %q is %s: abort it first", b.ID, b.Status)
	}
	if err := s.removeBackup(ctx, b); err != nil {
		return nil, err
	}
	return &addonsv1.DeleteBackupResponse{}, nil
}

// removeBackup deletes a backup's file, then its row.
func (s *Service) removeBackup(ctx context.Context, b Backup) error {
	if b.Key != "" {
		if err := s.deleteFile(ctx, b); err != nil {
			return err
		}
	}
	return apierr.FromStore(s.store.DeleteBackup(ctx, b.TeamID, b.ProjectID, b.AddonID, b.ID), "backup", b.ID)
}

// AbortBackup implements AddonsService.
func (s *Service) AbortBackup(ctx context.Context, req *addonsv1.AbortBackupRequest) (*addonsv1.AbortBackupResponse, error) {
	a, b, err := s.backup(ctx, req, req.GetAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateBackup(ctx, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
		if cur.Status != JobInProgress && cur.Status != JobScheduled {
			return nil, apierr.Conflict(apierr.ReasonBackupConcluded, "backup %q is %s: nothing to abort", cur.ID, cur.Status)
		}
		cur.Status = JobAborting
		return nil, nil
	})
	if err != nil {
		return nil, apierr.FromStore(err, "backup", b.ID)
	}
	s.cancel("backup/" + a.InternalID + "/" + b.ID)
	return &addonsv1.AbortBackupResponse{}, nil
}

// RetainBackup implements AddonsService.
func (s *Service) RetainBackup(ctx context.Context, req *addonsv1.RetainBackupRequest) (*addonsv1.RetainBackupResponse, error) {
	_, b, err := s.backup(ctx, req, req.GetAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateBackup(ctx, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
		cur.Retained = true
		return nil, nil
	}); err != nil {
		return nil, apierr.FromStore(err, "backup", b.ID)
	}
	return &addonsv1.RetainBackupResponse{}, nil
}

// ---- download links

// DownloadPath is the route (below /v1) that serves signed backup
// download links: the token authenticates the request, not the API's
// credentials.
const DownloadPath = "/addon-backup-downloads/{token}"

// downloadClaim is what a download token says.
type downloadClaim struct {
	Team    string `json:"t"`
	Project string `json:"p"`
	Addon   string `json:"a"`
	Backup  string `json:"b"`
	Expires int64  `json:"e"`
}

// signDownload makes a token: the claim's JSON and its HMAC-SHA256 under
// the download key, both base64url.
func (s *Service) signDownload(c downloadClaim) string {
	payload, _ := json.Marshal(c)
	mac := hmac.New(sha256.New, s.opts.DownloadKey)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// openDownload checks a token's signature (in constant time) and expiry.
func (s *Service) openDownload(token string) (downloadClaim, error) {
	enc, sig, ok := strings.Cut(token, ".")
	// Strict: a lenient decoder ignores the padding bits of the last
	// character, so several spellings would open the same link.
	payload, err1 := base64.RawURLEncoding.Strict().DecodeString(enc)
	got, err2 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if !ok || err1 != nil || err2 != nil {
		return downloadClaim{}, errBadLink
	}
	mac := hmac.New(sha256.New, s.opts.DownloadKey)
	mac.Write(payload)
	if subtle.ConstantTimeCompare(mac.Sum(nil), got) != 1 {
		return downloadClaim{}, errBadLink
	}
	var c downloadClaim
	if json.Unmarshal(payload, &c) != nil {
		return downloadClaim{}, errBadLink
	}
	if s.opts.Clock().Unix() > c.Expires {
		return downloadClaim{}, apierr.Conflict(apierr.ReasonDownloadLinkExpired, "the download link has expired: ask for a new one")
	}
	return c, nil
}

var errBadLink = apierr.NotFound("download link", "")

// GetBackupDownloadLink implements AddonsService.
func (s *Service) GetBackupDownloadLink(ctx context.Context, req *addonsv1.GetBackupDownloadLinkRequest) (*addonsv1.GetBackupDownloadLinkResponse, error) {
	_, b, err := s.backup(ctx, req, req.GetAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	if b.Status != JobCompleted {
		return nil, apierr.Conflict(apierr.ReasonBackupNotRestorable, "backup %q is %s: only a completed backup downloads", b.ID, b.Status)
	}
	expires := s.opts.Clock().Add(s.opts.DownloadTTL).Truncate(time.Second)
	token := s.signDownload(downloadClaim{Team: b.TeamID, Project: b.ProjectID, Addon: b.AddonID, Backup: b.ID, Expires: expires.Unix()})
	link := strings.TrimSuffix(s.opts.PublicURL, "/") + "/v1" + strings.Replace(DownloadPath, "{token}", url.PathEscape(token), 1)
	return &addonsv1.GetBackupDownloadLinkResponse{DownloadLink: link, ExpiresAt: ts(expires)}, nil
}

// DownloadBackup implements AddonsService: the backup's stored file, as
// it is (compressed as its config says), to the holder of a valid link.
func (s *Service) DownloadBackup(req *apiv1.DownloadRequest, stream addonsv1.AddonsService_DownloadBackupServer) error {
	ctx := stream.Context()
	c, err := s.openDownload(req.GetParams()["token"])
	if err != nil {
		return err
	}
	b, err := s.store.GetBackup(ctx, c.Team, c.Project, c.Addon, c.Backup)
	if err != nil {
		return apierr.NotFound("backup", c.Backup)
	}
	rc, err := s.getFile(ctx, b)
	if err != nil {
		s.log.Warn("opening a backup to download", "backup", b.ID, "error", err)
		return apierr.NotFound("backup", c.Backup)
	}
	defer rc.Close()
	first := &apiv1.DownloadChunk{ContentType: "application/octet-stream", Size: b.Size,
		Filename: c.Addon + "-" + b.Key[strings.LastIndex(b.Key, "/")+1:], Headers: map[string]string{"X-Checksum-Sha256": b.Checksum}}
	buf := make([]byte, 256<<10)
	for {
		n, err := io.ReadFull(rc, buf)
		chunk := first
		if chunk == nil {
			chunk = &apiv1.DownloadChunk{}
		}
		first = nil
		chunk.Data = buf[:n]
		if n > 0 || chunk.ContentType != "" {
			if serr := stream.Send(chunk); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ---- import

// maxImportBytes bounds an imported dump.
const maxImportBytes = 16 << 30

// ImportBackup implements AddonsService: the gzip dump at importUrl is
// stored as a backup of the addon ("externalDump"), verified, and
// restored into the addon.
func (s *Service) ImportBackup(ctx context.Context, req *addonsv1.ImportBackupRequest) (*addonsv1.ImportBackupResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if req.GetConnectionString() != "" || req.GetImportAllDatabases() {
		return nil, apierr.InvalidField("connectionString", "importing from a live database is not available: give importUrl, a gzip-compressed dump")
	}
	u, err := url.Parse(req.GetImportUrl())
	if req.GetImportUrl() == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, apierr.InvalidField("importUrl", "must be an http or https URL of a gzip-compressed dump")
	}
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, err
	}
	if !e.Info(s.opts.Driver.Name()).Features.ImportDump {
		return nil, apierr.InvalidField("importUrl", fmt.Sprintf("%s addons cannot import dumps here", a.Type))
	}
	if a.Status != StatusRunning {
		return nil, notRunning(a)
	}
	if id := req.GetCustomDestinationId(); id != "" {
		// The destination must exist (404) before anything is recorded.
		if _, err := s.objects(ctx, Backup{TeamID: a.TeamID, DestinationID: id}); err != nil {
			return nil, err
		}
	}
	now := s.now()
	name := req.GetName()
	if name == "" {
		name = a.Name + " import " + now.Format("2006-01-02 15:04:05")
	}
	b := Backup{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, ID: newID(now), Name: name, Type: engine.BackupDump,
		Compression: "gz", SourceType: "externalDump", Status: JobInProgress, AddonType: a.Type, AddonVersion: a.Settings.Version,
		CreatedAt: now, DestinationID: req.GetCustomDestinationId(), Verification: Verification{Status: VerifyPending}}
	b.Key = backupKey(a, b)
	started, err := backupEvents("started", b)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateBackup(ctx, b, started...); err != nil {
		return nil, apierr.FromStore(err, "backup", b.ID)
	}
	s.background(func(ctx context.Context) { s.runImport(ctx, a, b, u.String()) })
	return &addonsv1.ImportBackupResponse{Backup: s.backupOf(ctx, b)}, nil
}

// runImport fetches the dump (checking it is gzip), stores it with its
// size and checksum, verifies it (no source check: the throwaway
// instance must restore it), then restores it into the addon.
func (s *Service) runImport(ctx context.Context, a Addon, b Backup, src string) {
	ctx, cancel := context.WithCancel(ctx)
	defer s.cancelable("backup/"+a.InternalID+"/"+b.ID, cancel)()
	size, sum, err := s.fetchImport(ctx, b, src)
	if s.stopping() && errors.Is(err, context.Canceled) {
		// Slipway is stopping, nobody aborted it: the next start fails it
		// as interrupted (as runBackup), rather than calling it aborted.
		return
	}
	done := context.WithoutCancel(ctx)
	b, uerr := s.store.UpdateBackup(done, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
		cur.CompletedAt = s.now()
		if err != nil {
			if cur.Status == JobAborting || errors.Is(err, context.Canceled) {
				cur.Status, cur.StatusMessage = JobAborted, "aborted"
			} else {
				cur.Status, cur.StatusMessage = JobFailed, trimMessage("the import failed: "+userMessage(err))
			}
			cur.Verification = Verification{Status: VerifyFailed, Message: "no backup to verify: " + cur.StatusMessage}
			return backupEndEvents(*cur)
		}
		cur.Status, cur.Size, cur.Checksum = JobCompleted, size, sum
		return backupEndEvents(*cur)
	})
	if uerr != nil || err != nil {
		_ = s.deleteFile(done, b)
		return
	}
	s.note(done, a, LogBackup, b.ID, "imported %d bytes from %s, sha256 %s", size, redactURL(src), sum)
	s.verify(ctx, b)
	if cur, err := s.store.GetBackup(done, b.TeamID, b.ProjectID, b.AddonID, b.ID); err != nil || cur.Verification.Status != VerifyVerified {
		s.note(done, a, LogBackup, b.ID, "not restored into the addon: the dump did not verify")
		return
	}
	if _, err := s.startRestore(done, a, b); err != nil {
		s.note(done, a, LogBackup, b.ID, "not restored into the addon: %s", userMessage(err))
	}
}

// fetchImport downloads an import into the object store; the body must
// be gzip (checked as it is read).
func (s *Service) fetchImport(ctx context.Context, b Backup, src string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.opts.ImportClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("fetching %s: %w", redactURL(src), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("fetching %s: HTTP %d", redactURL(src), resp.StatusCode)
	}
	body := io.LimitReader(resp.Body, maxImportBytes)
	pr, pw := io.Pipe()
	go func() {
		// Check the gzip stream while storing it.
		zr, err := decompressor(io.TeeReader(body, pw), "gz")
		if err == nil {
			_, err = io.Copy(io.Discard, zr)
			zr.Close()
		}
		if err != nil {
			err = fmt.Errorf("the file at importUrl is not a gzip-compressed dump: %w", err)
		} else {
			_, err = io.Copy(pw, body) // trailing bytes, if any
		}
		pw.CloseWithError(err)
	}()
	size, sum, err := s.putFile(ctx, b, pr)
	if err != nil {
		pr.CloseWithError(err)
		return 0, "", err
	}
	return size, sum, nil
}

// redactURL drops credentials and the query from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the URL"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// ---- restores

// RestoreBackup implements AddonsService.
func (s *Service) RestoreBackup(ctx context.Context, req *addonsv1.RestoreBackupRequest) (*addonsv1.RestoreBackupResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	b, _, err := s.sourceBackup(ctx, a, req.GetSourceProjectId(), req.GetSourceAddonId(), req.GetBackupId())
	if err != nil {
		return nil, err
	}
	r, err := s.startRestore(ctx, a, b)
	if err != nil {
		return nil, err
	}
	return &addonsv1.RestoreBackupResponse{RestoreId: r.ID}, nil
}

// AbortRestore implements AddonsService.
func (s *Service) AbortRestore(ctx context.Context, req *addonsv1.AbortRestoreRequest) (*addonsv1.AbortRestoreResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	r, err := s.store.GetRestore(ctx, a.TeamID, a.ProjectID, a.ID, req.GetRestoreId())
	if err != nil || r.BackupID != req.GetBackupId() {
		return nil, apierr.NotFound("restore", req.GetRestoreId())
	}
	if _, err := s.store.UpdateRestore(ctx, a.TeamID, a.ProjectID, a.ID, r.ID, func(cur *Restore) ([]events.Event, error) {
		if cur.Status != JobInProgress && cur.Status != JobScheduled {
			return nil, apierr.Conflict(apierr.ReasonBackupConcluded, "restore %q is %s: nothing to abort", cur.ID, cur.Status)
		}
		cur.Status = JobAborting
		return nil, nil
	}); err != nil {
		return nil, apierr.FromStore(err, "restore", r.ID)
	}
	s.cancel("restore/" + a.InternalID + "/" + r.ID)
	return &addonsv1.AbortRestoreResponse{}, nil
}

// ListBackupRestores implements AddonsService: the restores of a backup
// of this addon (or, with sourceAddonId, of another addon's backup) into
// this addon.
func (s *Service) ListBackupRestores(ctx context.Context, req *addonsv1.ListBackupRestoresRequest) (*addonsv1.ListBackupRestoresResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	ref := BackupRef{ProjectID: a.ProjectID, AddonID: a.ID, ID: req.GetBackupId()}
	if req.GetSourceProjectId() != "" {
		ref.ProjectID = req.GetSourceProjectId()
	}
	if req.GetSourceAddonId() != "" {
		ref.AddonID = req.GetSourceAddonId()
	}
	if _, err := s.store.GetBackup(ctx, a.TeamID, ref.ProjectID, ref.AddonID, ref.ID); err != nil {
		return nil, apierr.FromStore(err, "backup", ref.ID)
	}
	scope := "addon-backup-restores/" + a.TeamID + "/" + a.ProjectID + "/" + a.ID + "/" + ref.ProjectID + "/" + ref.AddonID + "/" + ref.ID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListRestores(ctx, a.TeamID, a.ProjectID, a.ID, &ref, p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListBackupRestoresResponse{Restores: make([]*addonsv1.Restore, 0, len(list))}
	last := ""
	for _, r := range list {
		resp.Restores = append(resp.Restores, restoreOf(r))
		last = r.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// ListAddonRestores implements AddonsService.
func (s *Service) ListAddonRestores(ctx context.Context, req *addonsv1.ListAddonRestoresRequest) (*addonsv1.ListAddonRestoresResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	scope := "addon-restores/" + a.TeamID + "/" + a.ProjectID + "/" + a.ID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListRestores(ctx, a.TeamID, a.ProjectID, a.ID, nil, p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListAddonRestoresResponse{Restores: make([]*addonsv1.Restore, 0, len(list))}
	last := ""
	for _, r := range list {
		resp.Restores = append(resp.Restores, restoreOf(r))
		last = r.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// DestinationBackups implements DestinationBackups for the destinations
// server: a team's backups stored in a destination.
func (s *Service) DestinationBackups(ctx context.Context, team, destination string, page paging.Page) ([]*addonsv1.DestinationBackup, bool, string, int, error) {
	list, more, total, err := s.store.DestinationBackups(ctx, team, destination, page)
	if err != nil {
		return nil, false, "", 0, err
	}
	out := make([]*addonsv1.DestinationBackup, 0, len(list))
	last := ""
	for _, b := range list {
		d := &addonsv1.DestinationBackup{Id: b.ID, Name: b.Name, Status: b.Status,
			Project: &addonsv1.DestinationBackupRef{Id: b.ProjectID, Name: b.ProjectID},
			Addon:   &addonsv1.DestinationBackupRef{Id: b.AddonID, Name: b.AddonID},
			Config: &addonsv1.DestinationBackupConfig{AddonVersion: b.AddonVersion, AddonType: b.AddonType,
				Source: &addonsv1.DestinationBackupSource{Type: b.SourceType}, Size: sizeString(b.Size)},
			Schedules: []*addonsv1.DestinationBackupSchedule{}, CreatedAt: ts(b.CreatedAt), CompletedAt: ts(b.CompletedAt)}
		if !b.ExpiresAt.IsZero() && !b.Retained {
			d.ExpiredBy = float64(b.ExpiresAt.UnixMilli())
		}
		out = append(out, d)
		last = b.ProjectID + "/" + b.AddonID + "/" + b.ID
	}
	return out, more, last, total, nil
}

// DestinationSchedule implements DestinationBackups: the first schedule
// of team (by project, addon and id) whose backups go to destination.
func (s *Service) DestinationSchedule(ctx context.Context, team, destination string) (string, string, error) {
	all, err := s.store.AllSchedules(ctx)
	if err != nil {
		return "", "", err
	}
	for _, sc := range all {
		if sc.TeamID == team && sc.DestinationID == destination {
			return sc.ProjectID, sc.AddonID, nil
		}
	}
	return "", "", nil
}
