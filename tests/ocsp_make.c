/*
 * ocsp_make.c - makes the OCSP responses tests/check_tls_ocsp.sh needs and
 * `openssl ocsp` cannot: any thisUpdate and nextUpdate (an expired one, one
 * not yet valid), and a response that is not "successful".
 *
 *   ocsp_make OUT ISSUER.crt CERT.crt SIGNER.crt SIGNER.key STATUS THIS_S NEXT_S
 *     STATUS: good, revoked or unknown; THIS_S, NEXT_S: seconds from now
 *     (negative: past) of thisUpdate and nextUpdate.  Signed by SIGNER,
 *     which is included.
 *   ocsp_make OUT trylater
 *     a response with status tryLater and no body.
 *
 * Exit 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>

static X509 *ocsp_make_cert(const char *name)
{
    FILE *f = fopen(name, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!x)
        fprintf(stderr, "ocsp_make: %s: not a PEM certificate\n", name);
    return x;
}

static EVP_PKEY *ocsp_make_key(const char *name)
{
    FILE *f = fopen(name, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k)
        fprintf(stderr, "ocsp_make: %s: not a PEM private key\n", name);
    return k;
}

static int ocsp_make_write(const char *out, OCSP_RESPONSE *resp)
{
    unsigned char *der = NULL;
    int len = i2d_OCSP_RESPONSE(resp, &der);
    FILE *f = fopen(out, "wb");
    int ok = len > 0 && f && fwrite(der, 1, (size_t)len, f) == (size_t)len;
    if (f && fclose(f) != 0)
        ok = 0;
    OPENSSL_free(der);
    if (!ok)
        fprintf(stderr, "ocsp_make: %s: cannot write\n", out);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "trylater") == 0) {
        OCSP_RESPONSE *resp = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, NULL);
        int rc = resp ? ocsp_make_write(argv[1], resp) : 1;
        OCSP_RESPONSE_free(resp);
        return rc;
    }
    if (argc != 9) {
        fprintf(stderr, "usage: ocsp_make OUT ISSUER CERT SIGNER SIGNER_KEY "
                        "good|revoked|unknown THIS_S NEXT_S\n"
                        "       ocsp_make OUT trylater\n");
        return 1;
    }
    int status = strcmp(argv[6], "good") == 0      ? V_OCSP_CERTSTATUS_GOOD
                 : strcmp(argv[6], "revoked") == 0 ? V_OCSP_CERTSTATUS_REVOKED
                                                   : V_OCSP_CERTSTATUS_UNKNOWN;
    X509 *issuer = ocsp_make_cert(argv[2]), *cert = ocsp_make_cert(argv[3]);
    X509 *signer = ocsp_make_cert(argv[4]);
    EVP_PKEY *key = ocsp_make_key(argv[5]);
    ASN1_TIME *this_update = X509_gmtime_adj(NULL, atol(argv[7]));
    ASN1_TIME *next_update = X509_gmtime_adj(NULL, atol(argv[8]));
    ASN1_TIME *revoked = X509_gmtime_adj(NULL, -86400);
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = issuer && cert ? OCSP_cert_to_id(NULL, cert, issuer) : NULL;
    OCSP_RESPONSE *resp = NULL;
    int rc = 1;
    if (!id || !key || !signer || !bs || !this_update || !next_update || !revoked)
        goto out;
    if (!OCSP_basic_add1_status(bs, id, status, OCSP_REVOKED_STATUS_KEYCOMPROMISE, revoked,
                                this_update, next_update) ||
        !OCSP_basic_sign(bs, signer, key, EVP_sha256(), NULL, 0) ||
        !(resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs))) {
        fprintf(stderr, "ocsp_make: cannot make the response\n");
        goto out;
    }
    rc = ocsp_make_write(argv[1], resp);
out:
    OCSP_RESPONSE_free(resp);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    ASN1_TIME_free(this_update);
    ASN1_TIME_free(next_update);
    ASN1_TIME_free(revoked);
    EVP_PKEY_free(key);
    X509_free(issuer);
    X509_free(cert);
    X509_free(signer);
    return rc;
}
