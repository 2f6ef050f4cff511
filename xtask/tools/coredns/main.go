// CoreDNS with only the plugins promlearn's tutorial and tests use (the Corefile at the
// repository's root: `prometheus` and `whoami`), pinned with every dependency in go.mod and
// go.sum. `go install github.com/coredns/coredns@VERSION` builds every plugin and downloads every
// plugin's modules (cloud SDKs, Kubernetes, etcd): minutes on a fresh machine, where this builds
// from a small fraction of them. `cargo xtask setup` builds the binary from here into the tool
// cache (xtask/src/provision.rs). To move to another release: `go get
// github.com/coredns/coredns@vX.Y.Z && go mod tidy` here, then change COREDNS_VERSION in
// xtask/src/provision.rs and the image tag in crates/testbed/src/containers.rs. A Corefile that
// needs another plugin needs its import below and its name in `directives`.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// A plugin registers itself when its package is imported.
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// The plugins built in, in the order CoreDNS runs them (its core/dnsserver/zdirectives.go,
// generated from plugin.cfg): the metrics plugin's directive is `prometheus`.
var directives = []string{"prometheus", "whoami"}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintln(os.Stderr, "coredns: the plugin list:", err)
		os.Exit(1)
	}
	coremain.Run()
}
