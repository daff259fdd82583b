/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // The RCA server and simulator URLs are read at run time (RCA_API_URL, RCA_SIM_URL),
  // never baked into the build: one build serves any server.
};

export default nextConfig;
