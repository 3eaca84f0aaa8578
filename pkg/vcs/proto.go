package vcs

import deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"

// The API carries credentials in one message, deployments.v1.VcsCredentials:
// the deployments service's vcsData, the jobs service's (which imports it)
// and the build sources both give the builds component. These are the
// only conversions between it and Credentials, so that a field added to
// one reaches every service.

// CredentialsFromProto reads credentials as a request or a build source
// gives them: nil when none are given, and an empty Credentials when every
// field is empty (which, in an update, removes the stored ones:
// KeepCredentials).
func CredentialsFromProto(in *deploymentsv1.VcsCredentials) *Credentials {
	if in == nil {
		return nil
	}
	return &Credentials{Username: in.GetUsername(), Password: in.GetPassword(), PrivateKey: in.GetPrivateKey(), KnownHosts: in.GetKnownHosts()}
}

// Proto is c in the API's form, for the internal build source (answers to
// users never carry credentials); nil for nil credentials.
func (c *Credentials) Proto() *deploymentsv1.VcsCredentials {
	if c == nil {
		return nil
	}
	return &deploymentsv1.VcsCredentials{Username: c.Username, Password: c.Password, PrivateKey: c.PrivateKey, KnownHosts: c.KnownHosts}
}
