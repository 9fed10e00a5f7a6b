/* SPDX-License-Identifier: MIT */
/*
 * espstm sign: sign an image for a locked bridge (firmware/core/http_api.h "Signed images").
 * Writes the DER ECDSA P-256 signature of SHA-256("espstm-image-v1 ADDR\n" + IMAGE), the
 * same bytes as
 *   (printf 'espstm-image-v1 0x08000000\n'; cat app.bin) | openssl dgst -sha256 -sign signer.pem
 * through firmware/crypto/image_sig.h (mbedTLS). `espstm flash` sends IMAGE.sig along.
 */
#include "cli_flash.h"
#include "espstm.h"
#include "image_sig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

static const char sign_help[] =
    "Usage: espstm sign --key KEY [--addr ADDR | --hex] IMAGE [-o OUT]\n"
    "\n"
    "Sign IMAGE for a bridge in locked mode (espstm-bridge --verify-key PUB): write the DER\n"
    "ECDSA P-256 signature of SHA-256(\"espstm-image-v1 ADDR\\n\" + IMAGE) to OUT (default\n"
    "IMAGE.sig), as `openssl dgst -sha256 -sign KEY` does over the same bytes.\n"
    "  -k, --key KEY    the private key (PEM, openssl ecparam -name prime256v1 -genkey)\n"
    "  -a, --addr ADDR  the flash address the .bin is for (0x-hex; default 0x08000000,\n"
    "                   the bridge's default); the bridge checks it against address=\n"
    "      --hex        IMAGE is Intel HEX (default for .hex, .ihex, .ihx): ADDR is \"hex\"\n"
    "  -o, --output OUT where the signature goes (default IMAGE.sig)\n"
    "Exit status: 0 written, 1 writing failed, 2 usage, 65 KEY is not a P-256 private key,\n"
    "66 KEY or IMAGE unreadable.\n";

static int entropy(void *ctx, unsigned char *p, size_t n)
{
	(void)ctx;
	while (n) {
		ssize_t k = getrandom(p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The private key of path into k. Returns 0 or an exit status (message printed). */
static int load_key(const char *path, struct image_sig_key *k)
{
	static char pem[IMAGE_SIG_PEM_MAX + 1];
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "espstm sign: %s: %s\n", path, strerror(errno));
		return CLI_FLASH_EXIT_NOINPUT;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr,
		        "espstm sign: warning: %s is accessible by group/others (mode %03o)\n",
		        path, (unsigned)(st.st_mode & 0777));
	size_t n = fread(pem, 1, sizeof(pem), f);
	fclose(f);
	int r = n > IMAGE_SIG_PEM_MAX ? -EINVAL : image_sig_key_load_private(k, pem, n);
	memset(pem, 0, sizeof(pem));
	if (r < 0) {
		fprintf(stderr,
		        "espstm sign: %s: not a PEM ECDSA P-256 private key (openssl ecparam -name "
		        "prime256v1 -genkey -noout -out %s)\n",
		        path, path);
		return CLI_FLASH_EXIT_DATAERR;
	}
	return 0;
}

/* Hash IMAGE into s. Returns 0 or an exit status. */
static int hash_image(const char *path, struct image_sig *s)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "espstm sign: %s: %s\n", path, strerror(errno));
		return CLI_FLASH_EXIT_NOINPUT;
	}
	uint8_t buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		image_sig_update(s, buf, n);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "espstm sign: %s: read error\n", path);
		return CLI_FLASH_EXIT_NOINPUT;
	}
	return 0;
}

static int write_sig(const char *path, const uint8_t *der, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(der, 1, len, f) == len;
	if (f)
		ok = fclose(f) == 0 && ok;
	if (!ok) {
		fprintf(stderr, "espstm sign: %s: %s\n", path, strerror(errno));
		return CLI_FLASH_EXIT_FAILED;
	}
	return 0;
}

struct sign_opts {
	const char *key, *image, *out;
	char addr[16];
	int hex, has_addr;
};

/* The command line into o. Returns -1 to go on, or the exit status. */
static int sign_args(int argc, char **argv, struct sign_opts *o)
{
	static const struct option lo[] = {
	    {"key", required_argument, NULL, 'k'}, {"addr", required_argument, NULL, 'a'},
	    {"hex", no_argument, NULL, 'x'},       {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "k:a:o:h", lo, NULL)) != -1) {
		char *end;
		unsigned long v;
		switch (c) {
		case 'k':
			o->key = optarg;
			break;
		case 'a':
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || !*optarg || v > 0xFFFFFFFFul || (v & 3)) {
				fprintf(
				    stderr,
				    "espstm sign: --addr: want a flash address, a multiple of 4 "
				    "(0x08000000)\n");
				return CLI_FLASH_EXIT_USAGE;
			}
			snprintf(o->addr, sizeof(o->addr), "0x%08lx", v);
			o->has_addr = 1;
			break;
		case 'x':
			o->hex = 1;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'h':
			fputs(sign_help, stdout);
			return 0;
		default:
			fputs("Try 'espstm sign --help'.\n", stderr);
			return CLI_FLASH_EXIT_USAGE;
		}
	}
	if (!o->key || optind != argc - 1) {
		fprintf(stderr, "espstm sign: want --key KEY and one IMAGE\nTry 'espstm sign "
		                "--help'.\n");
		return CLI_FLASH_EXIT_USAGE;
	}
	o->image = argv[optind];
	if (!o->has_addr && cli_flash_detect_format(o->image) == CLI_FMT_HEX)
		o->hex = 1;
	if (o->hex && o->has_addr) {
		fprintf(stderr, "espstm sign: --addr is for a .bin (Intel HEX has its own)\n");
		return CLI_FLASH_EXIT_USAGE;
	}
	if (o->hex)
		snprintf(o->addr, sizeof(o->addr), "hex");
	else if (!o->has_addr)
		snprintf(o->addr, sizeof(o->addr), "0x%08x", 0x08000000u);
	return -1;
}

int espstm_sign_main(int argc, char **argv)
{
	struct sign_opts o = {0};
	int r = sign_args(argc, argv, &o);
	if (r >= 0)
		return r;
	char outbuf[4096];
	if (!o.out) {
		if (snprintf(outbuf, sizeof(outbuf), "%s.sig", o.image) >= (int)sizeof(outbuf)) {
			fprintf(stderr, "espstm sign: IMAGE path too long\n");
			return CLI_FLASH_EXIT_USAGE;
		}
		o.out = outbuf;
	}
	struct image_sig_key k;
	r = load_key(o.key, &k);
	if (r)
		return r;
	struct image_sig s;
	uint8_t der[IMAGE_SIG_DER_MAX];
	size_t len = 0;
	image_sig_hash_begin(&s, o.addr);
	r = hash_image(o.image, &s);
	if (r == 0 && image_sig_sign(&s, &k, der, sizeof(der), &len, entropy, NULL) < 0) {
		fprintf(stderr, "espstm sign: signing failed\n");
		r = CLI_FLASH_EXIT_FAILED;
	}
	image_sig_cancel(&s);
	image_sig_key_free(&k);
	if (r == 0)
		r = write_sig(o.out, der, len);
	if (r == 0)
		fprintf(stderr, "espstm sign: %s signed for %s: %s (%zu bytes)\n", o.image, o.addr,
		        o.out, len);
	return r;
}
