package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ashlar-dev/ashlar/internal/identity"
)

// tokenCmd manages the token signing keys the nodes share through the
// database: `token rotate` adds a key that signs from KeyStagingDelay on
// (nobody is logged out: older keys verify their tokens until those
// expire), `token keys` lists the keys and their state.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "keys") {
		return fmt.Errorf("%w: token needs rotate or keys", errUsage)
	}
	cfg, d, err := openConfigured("token "+args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx := context.Background()
	lifetime := cfg.Identity.TokenExpiration
	if args[0] == "rotate" {
		k, err := identity.RotateTokenKey(ctx, d, identity.Rotation{Lifetime: lifetime, Delay: identity.KeyStagingDelay})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new token key %s signs from %s; tokens signed before stay valid until they expire\n",
			k.ID, k.SignsFrom.Local().Format(time.DateTime))
		return nil
	}
	keys, err := identity.TokenKeys(ctx, d, lifetime)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "KEY\tSTATE\tCREATED\tSIGNS FROM\tVERIFIES UNTIL\n")
	for _, k := range keys {
		until := "-"
		if !k.VerifiesUntil.IsZero() {
			until = k.VerifiesUntil.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.State, k.CreatedAt.Local().Format(time.DateTime),
			k.SignsFrom.Local().Format(time.DateTime), until)
	}
	return tw.Flush()
}
