import CHDF5
import COpenBLAS
import Foundation
import Testing

/// The system libraries link and their shimmed macros work (the later modules build on them).
@Suite("Native libraries")
struct NativeLibrariesTests {
    @Test func openBLASMultiplies() {
        // C = A(2x3) * B(3x2), row-major.
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 3, 1, a, 3, b, 2, 0, &c, 2)
        #expect(c == [58, 64, 139, 154])
    }

    @Test func hdf5WritesAndReadsAFloatDataset() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/t.h5"
            let values: [Float] = [1.5, -2, 3.25, 0]
            let file = H5Fcreate(path, chdf5_acc_trunc(), chdf5_p_default(), chdf5_p_default())
            #expect(file >= 0)
            var dims: [hsize_t] = [2, 2]
            let space = H5Screate_simple(2, &dims, nil)
            let dataset = H5Dcreate2(file, "w", chdf5_ieee_f32le(), space, chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
            #expect(H5Dwrite(dataset, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), values) >= 0)
            H5Dclose(dataset); H5Sclose(space); H5Fclose(file)

            let reopened = H5Fopen(path, chdf5_acc_rdonly(), chdf5_p_default())
            let read = H5Dopen2(reopened, "w", chdf5_p_default())
            var back = [Float](repeating: 9, count: 4)
            #expect(H5Dread(read, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &back) >= 0)
            H5Dclose(read); H5Fclose(reopened)
            #expect(back == values)
        }
    }
}
