// For benchmarks only, never part of a Kubernetes build: added to
// cmd/kube-apiserver/app through `go build -overlay` (see ../run.sh), with one call
// inserted into CreateServerChain. Kubernetes 1.20 turned --insecure-port into a
// no-op; this serves the very handler chain 1.19's insecure port served
// (pkg/kubeapiserver/server.BuildInsecureHandlerChain: no TLS, no authentication),
// wired as 1.19 wired it, on the loopback address named by
// KUBE_APISERVER_ANCHOR_PLAIN_HTTP. It exists to measure the apiserver without TLS.

package app

import (
	"fmt"
	"net"
	"os"

	genericapiserver "k8s.io/apiserver/pkg/server"
	aggregatorapiserver "k8s.io/kube-aggregator/pkg/apiserver"
	"k8s.io/kubernetes/pkg/controlplane"
	kubeserver "k8s.io/kubernetes/pkg/kubeapiserver/server"
)

func serveAnchorPlainHTTP(aggregatorServer *aggregatorapiserver.APIAggregator, config *controlplane.Config, stopCh <-chan struct{}) error {
	addr := os.Getenv("KUBE_APISERVER_ANCHOR_PLAIN_HTTP")
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("KUBE_APISERVER_ANCHOR_PLAIN_HTTP=%q: not a loopback address", addr)
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	info := &genericapiserver.DeprecatedInsecureServingInfo{Listener: listener, Name: "anchor plain http"}
	handler := kubeserver.BuildInsecureHandlerChain(aggregatorServer.GenericAPIServer.UnprotectedHandler(), config.GenericConfig)
	return info.Serve(handler, config.GenericConfig.RequestTimeout, stopCh)
}
