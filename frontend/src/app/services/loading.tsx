import Loading from "@/components/Loading";

export default function ServicesLoading() {
  return <Loading what="services" />;
}
