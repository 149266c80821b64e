/* pam-bench's native pixel kernels: the element-wise parts of SSIM and PSNR, fused.
 *
 * Each function performs exactly the IEEE operations, in the same order, that the numpy reference in
 * pam_bench/metrics/pixel.py performs (compiled with -ffp-contract=off: no fused multiply-add), so every
 * per-pixel value is bit-identical, and sums are numpy's pairwise sums: the results are bit-equal.
 * The functions touch no Python object, so ctypes calls them with the GIL released.
 */
#include <stddef.h>
#include <stdint.h>

/* The five SSIM moment images of one frame, one after the other in out (5 * n floats):
 * x = a - centre, y = b - centre, x*x, y*y, x*y (float32; exact for uint8 inputs). */
void pb_ssim_moments(const uint8_t *restrict a, const uint8_t *restrict b, size_t n, float centre, float *restrict out)
{
    float *restrict x = out, *restrict y = out + n, *restrict xx = out + 2 * n, *restrict yy = out + 3 * n, *restrict xy = out + 4 * n;
    for (size_t i = 0; i < n; i++) {
        float u = (float)a[i] - centre, v = (float)b[i] - centre;
        x[i] = u;
        y[i] = v;
        xx[i] = u * u;
        yy[i] = v * v;
        xy[i] = u * v;
    }
}

/* numpy's pairwise summation of a contiguous float64 array (np.add.reduce: blocks of up to 128 values summed
 * in 8 partial sums, halved at a multiple of 8 above that), so a sum here is bit-equal to ndarray.sum(). */
static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (size_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* Sum of the SSIM map over the interior of one frame, from its five filtered moment images stacked in
 * f (5 planes of h rows of row_len floats, row_len = width * channels); the interior drops pad rows at
 * the top and bottom and pad * channels values at each end of a row. As the numpy reference does, the map
 * is formed `rows` interior rows at a time into tmp (rows * (row_len - 2 * pad * channels) doubles), each
 * block is summed pairwise, and the block sums are added in order: the result is bit-equal. */
double pb_ssim_sum(const float *restrict f, size_t h, size_t row_len, size_t pad, size_t channels, double centre,
                   double c1, double c2, size_t rows, double *restrict tmp)
{
    size_t plane = h * row_len, lo = pad * channels, width = row_len - 2 * pad * channels;
    const float *mx = f, *my = f + plane, *mxx = f + 2 * plane, *myy = f + 3 * plane, *mxy = f + 4 * plane;
    double total = 0.0;
    for (size_t r0 = pad; r0 < h - pad; r0 += rows) {
        size_t n = (h - pad - r0 < rows) ? h - pad - r0 : rows;
        for (size_t r = 0; r < n; r++) {
            size_t o = (r0 + r) * row_len + lo;
            double *out = tmp + r * width;
            for (size_t j = 0; j < width; j++) {
                double ux = mx[o + j], uy = my[o + j];
                double den = (double)mxx[o + j] - ux * ux;  /* vx */
                double vy = (double)myy[o + j] - uy * uy;
                den = den + vy;
                den = den + c2;  /* vx + vy + c2 */
                double var = (double)mxy[o + j] - ux * uy;  /* vxy */
                var = var * 2.0;
                var = var + c2;  /* 2 vxy + c2 */
                ux = ux + centre;
                uy = uy + centre;
                double t3 = ux * ux;
                t3 = t3 + uy * uy;
                t3 = t3 + c1;
                den = den * t3;  /* (ux^2 + uy^2 + c1)(vx + vy + c2) */
                double t4 = ux * 2.0;
                t4 = t4 * uy;
                t4 = t4 + c1;
                t4 = t4 * var;  /* (2 ux uy + c1)(2 vxy + c2) */
                out[j] = t4 / den;
            }
        }
        total += pairwise_sum(tmp, n * width);
    }
    return total;
}

/* Sum of squared differences of two uint8 arrays, exact (integer). */
uint64_t pb_sse_u8(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        s += (uint64_t)(d * d);
    }
    return s;
}
