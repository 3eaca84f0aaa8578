package builder

import (
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// testCloneUID is the uid a clone container's user has in these tests.
const testCloneUID = 65534

// plantedWork is a work directory as handOver leaves it to the clone user
// (when the test runs as root: .slipway owned by testCloneUID), and a
// file outside it that the server can write and the clone user wants
// written.
func plantedWork(t *testing.T) (work, target string) {
	t.Helper()
	dir := t.TempDir()
	work = filepath.Join(dir, "work")
	if err := os.MkdirAll(filepath.Join(work, ".slipway"), 0o700); err != nil {
		t.Fatal(err)
	}
	target = filepath.Join(dir, "server-file")
	if err := os.WriteFile(target, []byte("the server's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(work, ".slipway"), testCloneUID, testCloneUID); err != nil {
			t.Fatal(err)
		}
	}
	return work, target
}

// plant makes a symbolic link at path to target, as the clone user would.
func plant(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, testCloneUID, testCloneUID); err != nil {
			t.Fatal(err)
		}
	}
}

func sshHostsRun(work string) *run {
	r := &run{work: work, sshHosts: []sshHost{{host: "git.test", port: "2222", ip: netip.MustParseAddr("127.0.0.1")}}}
	if os.Geteuid() == 0 {
		r.cloneUID, r.cloneGID = testCloneUID, testCloneUID
	}
	return r
}

func unchanged(t *testing.T, target string) {
	t.Helper()
	if b, err := os.ReadFile(target); err != nil || string(b) != "the server's\n" {
		t.Fatalf("the file outside the work directory now holds %q (%v)", b, err)
	}
}

// TestSSHHostsPlantedLink: the server's rewrite of .slipway/ssh_hosts
// after a clone container ran (for a submodule's ssh server) follows no
// link the clone user planted there, by an absolute or a relative path:
// the file outside stays as it was, and ssh_hosts is a new regular file
// the clone user can read.
func TestSSHHostsPlantedLink(t *testing.T) {
	for name, link := range map[string]func(target string) string{
		"absolute": func(target string) string { return target },
		"relative": func(string) string { return "../../server-file" },
	} {
		t.Run(name, func(t *testing.T) {
			work, target := plantedWork(t)
			plant(t, link(target), filepath.Join(work, ".slipway", "ssh_hosts"))
			r := sshHostsRun(work)
			if err := r.writeSSHHosts(); err != nil {
				t.Fatal(err)
			}
			unchanged(t, target)
			p := filepath.Join(work, ".slipway", "ssh_hosts")
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("ssh_hosts %v %v", fi, err)
			}
			if b, _ := os.ReadFile(p); string(b) != "git.test 2222 127.0.0.1 [git.test]:2222\n" {
				t.Errorf("ssh_hosts holds %q", b)
			}
			if st := fi.Sys().(*syscall.Stat_t); r.cloneUID != 0 && (st.Uid != testCloneUID || st.Gid != testCloneUID) {
				t.Errorf("ssh_hosts owned by %d:%d, want the clone user's", st.Uid, st.Gid)
			}
		})
	}
}

// TestSSHHostsPlantedDirLink: nor does it follow .slipway itself
// replaced by a link to a directory outside.
func TestSSHHostsPlantedDirLink(t *testing.T) {
	work, target := plantedWork(t)
	outside := filepath.Dir(target)
	if err := os.RemoveAll(filepath.Join(work, ".slipway")); err != nil {
		t.Fatal(err)
	}
	plant(t, outside, filepath.Join(work, ".slipway"))
	if err := os.Rename(target, filepath.Join(outside, "ssh_hosts")); err != nil {
		t.Fatal(err)
	}
	if err := sshHostsRun(work).writeSSHHosts(); err == nil {
		t.Error("written through a link out of the work directory")
	}
	unchanged(t, filepath.Join(outside, "ssh_hosts"))
}
