"""The portal: pages for holders and officers, logged in by the certificate alone."""
