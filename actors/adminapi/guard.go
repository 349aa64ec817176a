package adminapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// checkOrigin refuses the requests ServeHTTP says.
func (a *API) checkOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return errors.New("a web page of another site may not use the admin API")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("origin %q may not use the admin API", o)
		}
	}
	if !a.cfg.Remote && !loopbackHost(r.Host) {
		return fmt.Errorf("host %q: the admin API answers to a loopback address only (node run --api-remote)", r.Host)
	}
	return nil
}

// loopbackHost tells whether hostport (a request's Host) names this host: a loopback IP address or localhost.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
