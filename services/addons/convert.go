package addons

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
)

// ts is a timestamp for the API; nil for the zero time (left out).
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

func summaryOf(a Addon) *addonsv1.AddonSummary {
	return &addonsv1.AddonSummary{Id: a.ID, Name: a.Name, AppId: a.ProjectID + "/" + a.ID, Tags: orEmpty(a.Settings.Tags),
		Description: a.Settings.Description, Spec: &addonsv1.AddonSpecType{Type: a.Type}, Status: a.Status}
}

func structOfJSON(s string) *structpb.Struct {
	if s == "" {
		return nil
	}
	out := &structpb.Struct{}
	if out.UnmarshalJSON([]byte(s)) != nil {
		return nil
	}
	return out
}

// addonOf is the API's view of an addon (never its credentials).
func (s *Service) addonOf(ctx context.Context, a Addon) *addonsv1.Addon {
	region := s.opts.Catalog.DefaultRegion().GetId()
	out := &addonsv1.Addon{
		Id: a.ID, AppId: a.ProjectID + "/" + a.ID, Name: a.Name, Description: a.Settings.Description, Tags: orEmpty(a.Settings.Tags),
		Type: a.Type, Version: a.Settings.Version, StageId: a.Settings.StageID,
		Billing:    &addonsv1.AddonBilling{DeploymentPlan: a.Settings.Plan, Storage: int32(a.Settings.StorageMB), Replicas: int32(a.Settings.Replicas)},
		TlsEnabled: a.Settings.TLS, ExternalAccessEnabled: a.Settings.External, IpPolicies: []*addonsv1.IPPolicy{},
		Status: a.Status, StatusMessage: a.StatusMessage,
		Cluster:   &addonsv1.Cluster{Id: region, Name: region, Namespace: s.opts.Driver.Name()},
		CreatedAt: ts(a.CreatedAt), UpdatedAt: ts(a.UpdatedAt),
		Spec: &addonsv1.AddonDetails{Type: a.Type, Config: &addonsv1.AddonConfig{
			VersionTag: a.Settings.Version, LifecycleStatus: "active",
			Deployment: &addonsv1.AddonDeployment{Replicas: int32(a.Settings.Replicas), StorageClass: "local",
				StorageSize: int32(a.Settings.StorageMB), PlanId: a.Settings.Plan, Region: region},
			Networking: &addonsv1.AddonNetworking{TlsEnabled: a.Settings.TLS, ExternalAccessEnabled: a.Settings.External, IpPolicies: []*addonsv1.IPPolicy{}},
		}},
		BackupSchedules: []*addonsv1.BackupScheduleSpec{},
	}
	if a.Settings.DBName != "" {
		out.CustomCredentials = &addonsv1.CustomCredentials{DbName: a.Settings.DBName}
	}
	if src := a.Settings.Source; src != nil {
		out.Source = &addonsv1.AddonSource{ProjectId: src.ProjectID, AddonId: src.AddonID, BackupId: src.BackupID}
	}
	if a.Settings.Architecture != "" {
		out.Infrastructure = &addonsv1.Infrastructure{Architecture: a.Settings.Architecture}
	}
	if x := a.Settings.Extra; x != nil {
		out.TypeSpecificSettings, out.Metadata = structOfJSON(x.TypeSpecific), structOfJSON(x.Metadata)
	}
	if list, err := s.store.AddonSchedules(ctx, a.TeamID, a.ProjectID, a.ID); err == nil {
		for _, sc := range list {
			out.BackupSchedules = append(out.BackupSchedules, &addonsv1.BackupScheduleSpec{Scheduling: schedulingOf(sc),
				BackupType: sc.BackupType, CompressionType: sc.Compression, CustomDestinationId: sc.DestinationID,
				RetentionTime: int32(sc.RetentionDays), AdditionalDestinations: []*addonsv1.AdditionalDestination{}})
		}
	}
	return out
}

func ints32(list []int) []int32 {
	out := make([]int32, len(list))
	for i, v := range list {
		out[i] = int32(v)
	}
	return out
}

func schedulingOf(sc Schedule) *addonsv1.Scheduling {
	return &addonsv1.Scheduling{Interval: sc.Interval, Minute: ints32(sc.Minute), Hour: ints32(sc.Hour), Day: ints32(sc.Day)}
}

func scheduleOf(sc Schedule) *addonsv1.BackupSchedule {
	return &addonsv1.BackupSchedule{Id: sc.ID, BackupType: sc.BackupType, BackupCompressionType: sc.Compression,
		AdditionalDestinations: []*addonsv1.AdditionalDestination{}, CustomDestinationId: sc.DestinationID,
		Scheduling: schedulingOf(sc), RetentionTime: int32(sc.RetentionDays), CreatedAt: ts(sc.CreatedAt), UpdatedAt: ts(sc.UpdatedAt),
		Status: sc.Status, StatusMessage: sc.StatusMessage, LastRunAt: ts(sc.LastRunAt), NextRunAt: ts(sc.NextRunAt)}
}

// backupOf is the API's view of a backup, with its latest restore.
func (s *Service) backupOf(ctx context.Context, b Backup) *addonsv1.Backup {
	out := &addonsv1.Backup{
		Id: b.ID, Name: b.Name, Status: b.Status, CreatedAt: ts(b.CreatedAt), CompletedAt: ts(b.CompletedAt),
		Config: &addonsv1.BackupConfig{Source: &addonsv1.BackupSource{Type: b.SourceType}, Size: sizeString(b.Size),
			CompressionType: b.Compression, AddonVersion: b.AddonVersion, BackupType: b.Type, AddonType: b.AddonType, Checksum: b.Checksum},
		CustomDestinationId: b.DestinationID, StatusMessage: b.StatusMessage, Retained: b.Retained,
		ExpiresAt: ts(b.ExpiresAt), ScheduleId: b.ScheduleID,
		Verification: &addonsv1.BackupVerification{Status: b.Verification.Status, Message: b.Verification.Message,
			VerifiedAt: ts(b.Verification.VerifiedAt)},
	}
	if b.Verification.Result != nil {
		out.Verification.Result, _ = structpb.NewStruct(b.Verification.Result)
	}
	if r, err := s.store.LastRestore(ctx, b.TeamID, BackupRef{ProjectID: b.ProjectID, AddonID: b.AddonID, ID: b.ID}); err == nil {
		out.LastRestore = &addonsv1.LastRestore{RestoreTimestamp: ts(r.CreatedAt), Status: r.Status, CompletedAt: ts(r.CompletedAt)}
	}
	return out
}

func restoreOf(r Restore) *addonsv1.Restore {
	return &addonsv1.Restore{Id: r.ID, Status: r.Status, RestoreTimestamp: ts(r.CreatedAt), CompletedAt: ts(r.CompletedAt),
		BackupId: r.BackupID, StatusMessage: r.StatusMessage, AddonId: r.AddonID}
}
