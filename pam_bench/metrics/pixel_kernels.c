/* pam-bench's native pixel kernels: the element-wise parts of SSIM and PSNR, fused.
 *
 * Each function performs exactly the IEEE operations, in the same order, that the numpy reference in
 * pam_bench/metrics/pixel.py performs (compiled with -ffp-contract=off: no fused multiply-add), so every
 * per-pixel value is bit-identical; only the order of a frame's final sum differs (per row, then rows).
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

/* Sum of the SSIM map over the interior of one frame, from its five filtered moment images stacked in
 * f (5 planes of h rows of row_len floats, row_len = width * channels); the interior drops pad rows at
 * the top and bottom and pad * channels values at each end of a row. tmp holds row_len doubles. */
double pb_ssim_sum(const float *f, size_t h, size_t row_len, size_t pad, size_t channels, double centre,
                   double c1, double c2, double *restrict tmp)
{
    size_t plane = h * row_len, lo = pad * channels, hi = row_len - pad * channels;
    const float *mx = f, *my = f + plane, *mxx = f + 2 * plane, *myy = f + 3 * plane, *mxy = f + 4 * plane;
    double total = 0.0;
    for (size_t r = pad; r < h - pad; r++) {
        size_t o = r * row_len;
        for (size_t j = lo; j < hi; j++) {
            double ux = mx[o + j], uy = my[o + j];
            double den = (double)mxx[o + j] - ux * ux;
            double vy = (double)myy[o + j] - uy * uy;
            den = den + vy;
            den = den + c2;
            double var = (double)mxy[o + j] - ux * uy;
            var = var * 2.0;
            var = var + c2;
            ux = ux + centre;
            uy = uy + centre;
            double t3 = ux * ux;
            t3 = t3 + uy * uy;
            t3 = t3 + c1;
            den = den * t3;
            double t4 = ux * 2.0;
            t4 = t4 * uy;
            t4 = t4 + c1;
            t4 = t4 * var;
            tmp[j] = t4 / den;
        }
        double row = 0.0;
        for (size_t j = lo; j < hi; j++)
            row += tmp[j];
        total += row;
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
