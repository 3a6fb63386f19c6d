/* rp_test_dir — scratch directories for tests.
 *
 * Thread-safety: any thread (nftw keeps no state between calls). */
#ifndef RP_TEST_DIR_H
#define RP_TEST_DIR_H

/* Remove path and everything below it, not following symlinks; a missing
 * path is not an error. Returns 0, or -1 when something stayed. */
int rp_test_rmtree(const char *path);

#endif
