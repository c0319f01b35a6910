// Command certgen writes a throwaway CA and the certificates signed by it
// for the demo and the documentation's examples (`task certs`). The files
// are for trying TLS and mutual TLS on one machine, never for production.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/promproxy/promproxy/internal/testcerts"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	out := fs.String("out", "certs", "directory to write the files into")
	days := fs.Int("days", 30, "validity of the certificates in days")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	s, err := testcerts.NewSet(*out, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Printf(`wrote a test CA and certificates to %s (valid for %d days, not for production):
  trust (CA)     %s
  proxy          %s  %s   (localhost, 127.0.0.1, ::1)
  agent          %s  %s   (CN=agent,O=team-a, DNS agent.promproxy.test)
  wrong CA       %s  with client %s  %s
  expired        %s  %s
`, s.Dir, *days, s.CAFile, s.ServerCert, s.ServerKey, s.ClientCert, s.ClientKey,
		s.WrongCAFile, s.WrongClientCert, s.WrongClientKey, s.ExpiredServerCert, s.ExpiredClientCert)
	return nil
}
